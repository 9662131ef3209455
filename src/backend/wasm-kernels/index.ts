// The wasm kernels TF.js 4.22 lacks for training (or ships too slowly), registered in one place.
import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.ts';
import { depthwiseBackpropFilterConfig } from './depthwise-backprop-filter.ts';
import { depthwiseBackpropInputConfig } from './depthwise-backprop-input.ts';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.ts';

const wasmTrainingKernels: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  depthwiseBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  unsortedSegmentSumConfig,
];

/**
 * Registers (or replaces) this project's wasm training kernels; safe to call more than once.
 * Call after the wasm backend has initialised: Conv2DBackpropInput replaces the stock kernel, and
 * the stock one's setup must have run for tools that compare against it.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of wasmTrainingKernels) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing !== undefined) {
      if (existing !== config && !stockKernels.has(config.kernelName)) stockKernels.set(config.kernelName, existing);
      // unregister first: registerKernel would otherwise warn on every replacement.
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
    tf.registerKernel(config);
  }
}

const stockKernels = new Map<string, tf.KernelConfig>();

/** The kernel TF.js itself shipped for `kernelName` on wasm before ours replaced it (benchmarks, tests). */
export function stockWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  return stockKernels.get(kernelName);
}
