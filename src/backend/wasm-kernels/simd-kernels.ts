// TF.js kernels on wasm backed by this project's SIMD module (../simd/kernels.wat): LeakyRelu
// replaces the stock scalar loop for float32, five kernels of our own serve leakyReluGrad and the
// per-channel ops of ../channel-ops.ts, col2im serves Conv2DBackpropInput, and the Adam update
// serves ../adam-update.ts. Each writes its outputs straight into the heap.
import * as tf from '@tensorflow/tfjs';
import { simdKernels, SimdKernelError, wasmHeapOffset, type SimdKernels, type WasmKernelBackend } from '../simd/module.ts';
import { stockWasmKernel } from './stock-kernels.ts';

export const LEAKY_RELU_GRAD = 'MedvaeLeakyReluGrad';
export const CHANNEL_SUM = 'MedvaeChannelSum';
export const CHANNEL_SQUARED_DEVIATION_SUM = 'MedvaeChannelSquaredDeviationSum';
export const CHANNEL_SUM_AND_DOT = 'MedvaeChannelSumAndDot';
export const CHANNEL_AFFINE = 'MedvaeChannelAffine';
export const CHANNEL_SCALE_SHIFT = 'MedvaeChannelScaleShift';
export const COL2IM = 'MedvaeCol2Im';
export const ADAM_UPDATE = 'MedvaeAdamUpdate';

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

/** [rows, channels] of an activation whose last axis holds the channels. */
function rowsAndChannels(info: tf.TensorInfo): [number, number] {
  const channels = info.shape[info.shape.length - 1] ?? 1;
  return [tf.util.sizeFromShape(info.shape) / channels, channels];
}

/** Checks that `tensors` all have exactly `shape` (the kernels index them in step with the first input). */
function sameShape(kernelName: string, shape: readonly number[], named: Record<string, tf.TensorInfo>): void {
  for (const [name, info] of Object.entries(named)) {
    if (!tf.util.arraysEqual(info.shape, [...shape])) {
      throw new SimdKernelError(`${kernelName}: input '${name}' has shape [${info.shape.join(',')}], expected [${shape.join(',')}]`);
    }
  }
}

function simdKernel(
  kernelName: string,
  inputNames: readonly string[],
  run: (kernels: SimdKernels, inputs: tf.TensorInfo[], backend: WasmKernelBackend, attrs: tf.NamedAttrMap) => tf.TensorInfo | tf.TensorInfo[],
): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      run(loaded(kernelName), inputNames.map((name) => input(inputs, name, kernelName)), backend as unknown as WasmKernelBackend, attrs ?? {}),
  };
}

const at = wasmHeapOffset;

export const leakyReluConfig: tf.KernelConfig = {
  kernelName: tf.LeakyRelu,
  backendName: 'wasm',
  kernelFunc: (args) => {
    const x = args.inputs['x'];
    const kernels = simdKernels();
    if (x === undefined || x.dtype !== 'float32' || kernels === undefined) {
      const stock = stockWasmKernel(tf.LeakyRelu);
      if (stock === undefined) throw new SimdKernelError('LeakyRelu on wasm: the stock kernel was not kept at registration');
      return stock.kernelFunc(args);
    }
    const y = (args.backend as unknown as WasmKernelBackend).makeOutput([...x.shape], 'float32');
    const size = tf.util.sizeFromShape(x.shape);
    if (size > 0) kernels.leaky_relu(at(x), at(y), size, (args.attrs as unknown as tf.LeakyReluAttrs).alpha);
    return y;
  },
};

export const leakyReluGradConfig = simdKernel(LEAKY_RELU_GRAD, ['dy', 'x'], (kernels, [dy, x], backend, attrs) => {
  sameShape(LEAKY_RELU_GRAD, x.shape, { dy });
  const dx = backend.makeOutput([...x.shape], 'float32');
  const size = tf.util.sizeFromShape(x.shape);
  if (size > 0) kernels.leaky_relu_grad(at(dy), at(x), at(dx), size, attrs['alpha'] as number);
  return dx;
});

export const channelSumConfig = simdKernel(CHANNEL_SUM, ['x'], (kernels, [x], backend) => {
  const [rows, channels] = rowsAndChannels(x);
  const out = backend.makeOutput([channels], 'float32');
  kernels.channel_sum(at(x), rows, channels, at(out));
  return out;
});

export const channelSquaredDeviationSumConfig = simdKernel(CHANNEL_SQUARED_DEVIATION_SUM, ['x', 'center'], (kernels, [x, center], backend) => {
  const [rows, channels] = rowsAndChannels(x);
  sameShape(CHANNEL_SQUARED_DEVIATION_SUM, [channels], { center });
  const out = backend.makeOutput([channels], 'float32');
  kernels.channel_squared_deviation_sum(at(x), at(center), rows, channels, at(out));
  return out;
});

export const channelSumAndDotConfig = simdKernel(CHANNEL_SUM_AND_DOT, ['dy', 'x', 'center'], (kernels, [dy, x, center], backend) => {
  const [rows, channels] = rowsAndChannels(x);
  sameShape(CHANNEL_SUM_AND_DOT, x.shape, { dy });
  sameShape(CHANNEL_SUM_AND_DOT, [channels], { center });
  const sums = backend.makeOutput([channels], 'float32');
  const dots = backend.makeOutput([channels], 'float32');
  kernels.channel_sum_and_dot(at(dy), at(x), at(center), rows, channels, at(sums), at(dots));
  return [sums, dots];
});

export const channelAffineConfig = simdKernel(CHANNEL_AFFINE, ['u', 'v', 'a', 'b', 'k'], (kernels, [u, v, a, b, k], backend) => {
  const [rows, channels] = rowsAndChannels(u);
  sameShape(CHANNEL_AFFINE, u.shape, { v });
  sameShape(CHANNEL_AFFINE, [channels], { a, b, k });
  const y = backend.makeOutput([...u.shape], 'float32');
  kernels.channel_affine(at(u), at(v), at(a), at(b), at(k), at(y), rows, channels, 1);
  return y;
});

export const channelScaleShiftConfig = simdKernel(CHANNEL_SCALE_SHIFT, ['u', 'a', 'k'], (kernels, [u, a, k], backend) => {
  const [rows, channels] = rowsAndChannels(u);
  sameShape(CHANNEL_SCALE_SHIFT, [channels], { a, k });
  const y = backend.makeOutput([...u.shape], 'float32');
  // v and b are not read without withV
  kernels.channel_affine(at(u), 0, at(a), 0, at(k), at(y), rows, channels, 0);
  return y;
});

/** The geometry col2im needs: the conv's input (dx) shape, its output size, filter size, strides, leading pads. */
export interface Col2ImAttrs {
  inputShape: [number, number, number, number];
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

export const col2imConfig = simdKernel(COL2IM, ['cols'], (kernels, [cols], backend, attrs) => {
  const a = attrs as unknown as Col2ImAttrs;
  const [images, rows, width, channels] = a.inputShape;
  const expected = images * a.outHeight * a.outWidth * a.filterHeight * a.filterWidth * channels;
  if (tf.util.sizeFromShape(cols.shape) !== expected || channels % 4 !== 0) {
    throw new SimdKernelError(`${COL2IM}: cols of shape [${cols.shape.join(',')}] do not hold ${expected} values in whole vectors of channels (${channels})`);
  }
  const dx = backend.makeOutput([...a.inputShape], 'float32');
  kernels.col2im(at(cols), at(dx), images, a.outHeight, a.outWidth, rows, width, channels,
    a.filterHeight, a.filterWidth, a.strideHeight, a.strideWidth, a.padTop, a.padLeft);
  return dx;
});

/** Adam's hyper-parameters for one update, as ../adam-update.ts passes them. */
export interface AdamUpdateAttrs {
  weightDecay: number;
  beta1: number;
  beta2: number;
  stepSize: number;
  epsHat: number;
}

export const adamUpdateConfig = simdKernel(ADAM_UPDATE, ['p', 'g', 'm', 'v'], (kernels, [p, g, m, v], backend, attrs) => {
  sameShape(ADAM_UPDATE, p.shape, { g, m, v });
  const a = attrs as unknown as AdamUpdateAttrs;
  const outputs = [p, m, v].map(() => backend.makeOutput([...p.shape], 'float32'));
  const [pOut, mOut, vOut] = outputs;
  kernels.adam(at(p), at(g), at(m), at(v), at(pOut), at(mOut), at(vOut), tf.util.sizeFromShape(p.shape),
    a.weightDecay > 0 ? 1 : 0, a.weightDecay, a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.stepSize, a.epsHat);
  return outputs;
});
