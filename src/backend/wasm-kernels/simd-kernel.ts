// Builds wasm kernels that are one call into the SIMD module (../simd/kernels.wasm): inputs
// checked to be float32 and present, outputs allocated in the wasm heap, and the module's function
// given their heap offsets, so it reads and writes the tensors in place.
import { tf } from '../../util/tf.ts';
import { simdKernels, SimdKernelError, wasmHeapOffset, type SimdKernels, type WasmKernelBackend } from '../simd/module.ts';

function loaded(kernelName: string): SimdKernels {
  const kernels = simdKernels();
  if (kernels === undefined) throw new SimdKernelError(`${kernelName}: the SIMD kernels are not loaded on this wasm backend`);
  return kernels;
}

function input(inputs: tf.NamedTensorInfoMap, name: string, kernelName: string): tf.TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new SimdKernelError(`${kernelName}: missing input '${name}'`);
  if (info.dtype !== 'float32') throw new SimdKernelError(`${kernelName}: input '${name}' is ${info.dtype}, expected float32`);
  return info;
}

/** Heap byte offset of a tensor, the pointer the SIMD module's functions take. */
export const at = wasmHeapOffset;

/** [rows, channels] of an activation whose last axis holds the channels. */
export function rowsAndChannels(info: tf.TensorInfo): [number, number] {
  const channels = info.shape[info.shape.length - 1] ?? 1;
  return [tf.util.sizeFromShape(info.shape) / channels, channels];
}

/** Checks that `tensors` all have exactly `shape` (the kernels index them in step with the first input). */
export function sameShape(kernelName: string, shape: readonly number[], named: Record<string, tf.TensorInfo>): void {
  for (const [name, info] of Object.entries(named)) {
    if (!tf.util.arraysEqual(info.shape, [...shape])) {
      throw new SimdKernelError(`${kernelName}: input '${name}' has shape [${info.shape.join(',')}], expected [${shape.join(',')}]`);
    }
  }
}

/** A KernelConfig for 'wasm' named `kernelName` whose float32 inputs `inputNames` are handed to `run`. */
export function simdKernel(
  kernelName: string,
  inputNames: readonly string[],
  run: (
    kernels: SimdKernels,
    inputs: tf.TensorInfo[],
    backend: WasmKernelBackend,
    attrs: tf.NamedAttrMap,
  ) => tf.TensorInfo | tf.TensorInfo[],
): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      run(
        loaded(kernelName),
        inputNames.map((name) => input(inputs, name, kernelName)),
        backend as unknown as WasmKernelBackend,
        attrs ?? {},
      ),
  };
}
