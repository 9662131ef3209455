// Every wasm kernel this project registers, in one place (as tfjs-backend-wasm's
// register_all_kernels.ts): the kernels TF.js 4.22 lacks for training, and those of its own that
// this project replaces. Each lives in the file named after it, in kebab-case.
import { tf } from '../../util/tf.ts';
import { adamUpdateConfig } from './adam-update.ts';
import { addConfig } from './add.ts';
import { batchMatMulConfig } from './batch-mat-mul.ts';
import { channelAffineConfig } from './channel-affine.ts';
import { channelScaleShiftConfig } from './channel-scale-shift.ts';
import { channelSquaredDeviationSumConfig } from './channel-squared-deviation-sum.ts';
import { channelSumAndDotConfig } from './channel-sum-and-dot.ts';
import { channelSumConfig } from './channel-sum.ts';
import { col2imConfig } from './col2im.ts';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.ts';
import { conv2dConfig } from './conv2d.ts';
import { depthwiseConv2dNativeBackpropFilterConfig } from './depthwise-conv2d-native-backprop-filter.ts';
import { depthwiseConv2dNativeBackpropInputConfig } from './depthwise-conv2d-native-backprop-input.ts';
import { identityConfig } from './identity.ts';
import { leakyReluGradConfig } from './leaky-relu-grad.ts';
import { leakyReluConfig } from './leaky-relu.ts';
import { sliceConfig } from './slice.ts';
import { rememberStockKernel } from './stock-fallback.ts';
import { sumConfig } from './sum.ts';
import { tanhConfig } from './tanh.ts';
import { transposeConfig } from './transpose.ts';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.ts';

export { stockWasmKernel } from './stock-fallback.ts';

/** Kernels TF.js's wasm backend does not have: training gradients it does not ship, and this project's own (./kernel-names.ts). */
export const wasmKernelAdditions: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  unsortedSegmentSumConfig,
  leakyReluGradConfig,
  channelSumConfig,
  channelSquaredDeviationSumConfig,
  channelSumAndDotConfig,
  channelAffineConfig,
  channelScaleShiftConfig,
  col2imConfig,
  adamUpdateConfig,
];

/**
 * Replacements for TF.js's own wasm kernels. The stock kernel is kept (stockWasmKernel): all but
 * Conv2DBackpropInput hand the cases they do not speed up back to it (./stock-fallback.ts), and
 * tests and benchmarks compare against it.
 */
export const wasmKernelOverrides: readonly tf.KernelConfig[] = [
  conv2dBackpropInputConfig,
  conv2dConfig,
  batchMatMulConfig,
  sumConfig,
  sliceConfig,
  transposeConfig,
  identityConfig,
  leakyReluConfig,
  tanhConfig,
  addConfig,
];

/**
 * Registers this project's wasm kernels; safe to call more than once. Call after the wasm backend
 * has initialised, so that the stock kernels the overrides replace are there to be kept. Throws
 * when a TF.js upgrade has moved a kernel from one list to the other.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of wasmKernelAdditions) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing === config) continue;
    if (existing !== undefined) {
      throw new Error(
        `${config.kernelName}: TF.js's wasm backend now has this kernel; list ours among the overrides in register-all.ts (or drop it)`,
      );
    }
    tf.registerKernel(config);
  }
  for (const config of wasmKernelOverrides) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing === config) continue;
    if (existing === undefined) {
      throw new Error(
        `${config.kernelName}: TF.js's wasm backend has no such kernel to override; list ours among the additions in register-all.ts`,
      );
    }
    rememberStockKernel(existing);
    // unregister first: registerKernel would otherwise warn on every replacement
    tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  }
}
