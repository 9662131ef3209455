// The kernels TF.js itself shipped for wasm, kept when ours replace them, and the one way an
// override hands a case back to them: our overrides speed up some cases (a dtype, a shape, a
// permutation) and leave every other case to the stock kernel, unchanged. Tests and benchmarks
// compare against the kept kernels too.
import type { tf } from '../../util/tf.ts';

/** What a kernel function receives. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** What a kernel function returns. */
export type KernelOutput = ReturnType<tf.KernelFunc>;

const stockKernels = new Map<string, tf.KernelConfig>();

/** Remembers `config` as the stock kernel for its name, unless one was remembered already. */
export function rememberStockKernel(config: tf.KernelConfig): void {
  if (!stockKernels.has(config.kernelName)) stockKernels.set(config.kernelName, config);
}

/** The kernel TF.js itself shipped for `kernelName` on wasm before ours replaced it (benchmarks, tests). */
export function stockWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  return stockKernels.get(kernelName);
}

/**
 * A KernelConfig for 'wasm' replacing TF.js's own `kernelName`: `run` returns the output of the
 * cases it takes and undefined for every other case, which the stock kernel then runs.
 */
export function overrideStockKernel(kernelName: string, run: (args: KernelArgs) => KernelOutput | undefined): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const output = run(args);
      if (output !== undefined) return output;
      const stock = stockKernels.get(kernelName);
      if (stock === undefined) throw new Error(`${kernelName} on wasm: the stock kernel was not kept at registration`);
      return stock.kernelFunc(args);
    },
  };
}
