// The wasm kernels TF.js 4.22 lacks for training (or ships too slowly), registered in one place.
import * as tf from '@tensorflow/tfjs';
import { batchMatMulConfig } from './batch-mat-mul.ts';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.ts';
import { conv2dLineFilterConfig } from './conv2d-line-filter.ts';
import { depthwiseBackpropFilterConfig } from './depthwise-backprop-filter.ts';
import { depthwiseBackpropInputConfig } from './depthwise-backprop-input.ts';
import { identityConfig } from './identity.ts';
import { sliceConfig } from './slice.ts';
import {
  adamUpdateConfig,
  channelAffineConfig,
  channelScaleShiftConfig,
  channelSquaredDeviationSumConfig,
  channelSumAndDotConfig,
  channelSumConfig,
  col2imConfig,
  leakyReluConfig,
  leakyReluGradConfig,
} from './simd-kernels.ts';
import { rememberStockKernel } from './stock-kernels.ts';
import { sumConfig } from './sum.ts';
import { tanhConfig } from './tanh.ts';
import { transposeConfig } from './transpose.ts';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.ts';

export { stockWasmKernel } from './stock-kernels.ts';

const wasmTrainingKernels: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  depthwiseBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  unsortedSegmentSumConfig,
  sumConfig,
  batchMatMulConfig,
  conv2dLineFilterConfig,
  sliceConfig,
  leakyReluConfig,
  leakyReluGradConfig,
  channelSumConfig,
  channelSquaredDeviationSumConfig,
  channelSumAndDotConfig,
  channelAffineConfig,
  channelScaleShiftConfig,
  col2imConfig,
  adamUpdateConfig,
  transposeConfig,
  identityConfig,
  tanhConfig,
];

/**
 * Registers (or replaces) this project's wasm training kernels; safe to call more than once.
 * Call after the wasm backend has initialised: Conv2DBackpropInput, Sum, BatchMatMul, Conv2D, Slice, LeakyRelu, Transpose, Identity and Tanh replace stock
 * kernels, whose setup must have run because ours hand some cases back to them (and tools compare).
 */
export function registerWasmTrainingKernels(): void {
  for (const config of wasmTrainingKernels) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing !== undefined) {
      if (existing !== config) rememberStockKernel(existing);
      // unregister first: registerKernel would otherwise warn on every replacement.
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
    tf.registerKernel(config);
  }
}
