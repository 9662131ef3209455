// Builds wasm kernels whose body is written with ordinary tf ops, run on the kernel's own inputs.
//
// Why this shape: a kernel receives TensorInfos the engine owns. Wrapping one with
// engine().makeTensorFromTensorInfo tracks a new Tensor but does NOT add a backend reference, so
// disposing that wrapper would free the caller's data. We therefore incRef each input before
// wrapping it (the wrapper's dispose gives the reference back), and hand the result back as a bare
// TensorInfo holding one extra backend reference, which the engine's output tensor then owns.
// Ops run inside a kernel go to the active backend (wasm) and are not recorded on the gradient
// tape (the engine's kernelDepth is > 0 while a kernel runs).
import { tf } from '../../util/tf.ts';
import { overrideStockKernel, type KernelArgs } from './stock-fallback.ts';

function runComposed(
  backend: tf.KernelBackend,
  inputs: readonly tf.TensorInfo[],
  body: (tensors: tf.Tensor[]) => tf.Tensor,
): tf.TensorInfo {
  const engine = tf.engine();
  const wrapped = inputs.map((info) => {
    backend.incRef(info.dataId);
    return engine.makeTensorFromTensorInfo(info, backend);
  });
  try {
    const result = tf.tidy(() => body(wrapped));
    backend.incRef(result.dataId);
    const output: tf.TensorInfo = { dataId: result.dataId, shape: result.shape, dtype: result.dtype };
    result.dispose();
    return output;
  } finally {
    for (const tensor of wrapped) tensor.dispose();
  }
}

type ComposedBody<InputName extends string, Attrs> = (inputs: Record<InputName, tf.Tensor>, attrs: Attrs) => tf.Tensor;

function composedKernelFunc<InputName extends string, Attrs>(
  kernelName: string,
  inputNames: readonly InputName[],
  body: ComposedBody<InputName, Attrs>,
): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const infos = inputNames.map((name) => {
      const info = inputs[name];
      if (info === undefined) throw new Error(`${kernelName} on wasm: missing input '${name}'`);
      return info;
    });
    return runComposed(backend as tf.KernelBackend, infos, (tensors) => {
      const named = Object.fromEntries(inputNames.map((name, i) => [name, tensors[i]])) as Record<InputName, tf.Tensor>;
      return body(named, attrs as unknown as Attrs);
    });
  };
}

/** A KernelConfig for 'wasm' named `kernelName` whose inputs `inputNames` arrive as Tensors. */
export function composedWasmKernel<InputName extends string, Attrs>(
  kernelName: string,
  inputNames: readonly InputName[],
  body: ComposedBody<InputName, Attrs>,
): tf.KernelConfig {
  return { kernelName, backendName: 'wasm', kernelFunc: composedKernelFunc(kernelName, inputNames, body) };
}

/**
 * A KernelConfig replacing TF.js's own wasm `kernelName`: the cases `handles` accepts run `body`
 * (tf ops on Tensors, as in composedWasmKernel), every other case runs the stock kernel unchanged.
 */
export function overridingWasmKernel<InputName extends string, Attrs>(
  kernelName: string,
  inputNames: readonly InputName[],
  handles: (inputs: Record<InputName, tf.TensorInfo>, attrs: Attrs) => boolean,
  body: ComposedBody<InputName, Attrs>,
): tf.KernelConfig {
  const composed = composedKernelFunc(kernelName, inputNames, body);
  return overrideStockKernel(kernelName, (args: KernelArgs) =>
    handles(args.inputs as Record<InputName, tf.TensorInfo>, args.attrs as unknown as Attrs) ? composed(args) : undefined,
  );
}
