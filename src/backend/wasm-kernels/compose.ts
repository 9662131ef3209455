// Builds wasm kernels whose body is written with ordinary tf ops, run on the kernel's own inputs.
//
// Why this shape: a kernel receives TensorInfos the engine owns. Wrapping one with
// engine().makeTensorFromTensorInfo tracks a new Tensor but does NOT add a backend reference, so
// disposing that wrapper would free the caller's data. We therefore incRef each input before
// wrapping it (the wrapper's dispose gives the reference back), and hand the result back as a bare
// TensorInfo holding one extra backend reference, which the engine's output tensor then owns.
// Ops run inside a kernel go to the active backend (wasm) and are not recorded on the gradient
// tape (the engine's kernelDepth is > 0 while a kernel runs).
import * as tf from '@tensorflow/tfjs';
import { stockWasmKernel } from './stock-kernels.ts';

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
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      if (handles(args.inputs as Record<InputName, tf.TensorInfo>, args.attrs as unknown as Attrs)) return composed(args);
      const stock = stockWasmKernel(kernelName);
      if (stock === undefined) throw new Error(`${kernelName} on wasm: the stock kernel was not kept at registration`);
      return stock.kernelFunc(args);
    },
  };
}

/** [before, after] margins of the H and W axes: positive pads with zeros, negative crops. */
export type SpatialMargins = readonly [readonly [number, number], readonly [number, number]];

/**
 * Crops the negative margins off an NHWC tensor and returns the rest as explicit conv padding, so
 * the zero padding is done inside the XNNPACK convolution instead of by a separate copy.
 */
export function cropToConvPadding(
  x: tf.Tensor4D,
  margins: SpatialMargins,
): { cropped: tf.Tensor4D; padding: tf.backend_util.ExplicitPadding } {
  const [[top, bottom], [left, right]] = margins;
  const begin = [0, Math.max(0, -top), Math.max(0, -left), 0];
  const size = [
    x.shape[0],
    x.shape[1] - begin[1] - Math.max(0, -bottom),
    x.shape[2] - begin[2] - Math.max(0, -right),
    x.shape[3],
  ];
  const needsCrop = size[1] !== x.shape[1] || size[2] !== x.shape[2];
  return {
    cropped: needsCrop ? tf.slice(x, begin, size) : x,
    padding: [
      [0, 0],
      [Math.max(0, top), Math.max(0, bottom)],
      [Math.max(0, left), Math.max(0, right)],
      [0, 0],
    ],
  };
}

/** The attributes both conv backprop kernels carry. */
export interface ConvBackpropAttrs {
  strides: number | [number, number];
  pad: tf.Conv2DBackpropInputAttrs['pad'];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat: 'NHWC' | 'NCHW';
}

/** The forward convolution's geometry, for the NHWC layout these kernels handle; others are refused by name. */
export function nhwcConvInfo(
  kernel: string,
  inShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: ConvBackpropAttrs,
): tf.backend_util.Conv2DInfo {
  const info = tf.backend_util.computeConv2DInfo(
    inShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
  if (info.dataFormat !== 'channelsLast') throw new Error(`${kernel} on wasm supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  return info;
}
