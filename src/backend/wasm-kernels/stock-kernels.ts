// The kernels TF.js itself shipped for wasm, kept when ours replace them: our overrides hand the
// cases they do not speed up back to these, and tests and benchmarks compare against them.
import type * as tf from '@tensorflow/tfjs';

const stockKernels = new Map<string, tf.KernelConfig>();

/** Remembers `config` as the stock kernel for its name, unless one was remembered already. */
export function rememberStockKernel(config: tf.KernelConfig): void {
  if (!stockKernels.has(config.kernelName)) stockKernels.set(config.kernelName, config);
}

/** The kernel TF.js itself shipped for `kernelName` on wasm before ours replaced it (benchmarks, tests). */
export function stockWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  return stockKernels.get(kernelName);
}
