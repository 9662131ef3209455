// The kernels the native backend runs on onnxruntime, registered in one place. Each replaces the
// wasm kernel of its name while native is active and hands the cases it does not plan for back to
// that kernel; activating plain wasm again puts the wasm kernels back.
import { tf } from '../../util/tf.ts';
import { batchMatMulConfig } from './batch-mat-mul.ts';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.ts';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.ts';
import { conv2dConfig } from './conv2d.ts';
import { previousKernel as previousWasm, setPreviousKernel } from './native-kernel.ts';

const nativeKernels: readonly tf.KernelConfig[] = [conv2dConfig, conv2dBackpropInputConfig, conv2dBackpropFilterConfig, batchMatMulConfig];

function replace(config: tf.KernelConfig): void {
  tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

/**
 * Puts the native kernels in place of the wasm ones (call after the wasm backend and its training
 * kernels are set up); the wasm kernels they replace are kept as their fallbacks. Idempotent.
 */
export function installNativeKernels(): void {
  for (const config of nativeKernels) {
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing === config) continue;
    if (existing === undefined) throw new Error(`native backend: the wasm backend has no ${config.kernelName} kernel to fall back to`);
    setPreviousKernel(existing);
    replace(config);
  }
}

/** Puts back the wasm kernels that installNativeKernels replaced. Idempotent. */
export function removeNativeKernels(): void {
  for (const config of nativeKernels) {
    if (tf.getKernel(config.kernelName, 'wasm') !== config) continue;
    const previous = previousWasm(config.kernelName);
    tf.unregisterKernel(config.kernelName, 'wasm');
    if (previous !== undefined) tf.registerKernel(previous);
  }
}

export { nativeCallCounts } from './native-kernel.ts';
export { clearSessions, chosenGraphs, forceCandidate, nativeThreads, setNativeThreads } from './sessions.ts';
export { loadBinding, NativeBindingError, ORT_INSTALL_HINT, ORT_PACKAGE } from './binding.ts';
