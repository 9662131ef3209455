// Per-channel reductions and maps over activations whose last axis holds the channels (NHWC), and
// the LeakyReLU gradient: what batch norm and LeakyReLU need, each as one pass of the SIMD module
// on wasm (float32, channels a multiple of 4) and as ordinary tf ops everywhere else. Not
// differentiable themselves: they serve the forward and backward functions of custom gradients.
import { tf } from '../util/tf.ts';
import { simdKernels } from './simd/module.ts';
import {
  CHANNEL_AFFINE,
  CHANNEL_SCALE_SHIFT,
  CHANNEL_SQUARED_DEVIATION_SUM,
  CHANNEL_SUM,
  CHANNEL_SUM_AND_DOT,
  LEAKY_RELU_GRAD,
} from './wasm-kernels/kernel-names.ts';

function channelsOf(x: tf.Tensor): number {
  return x.shape[x.rank - 1] ?? 1;
}

/** The SIMD kernels apply: wasm with the module loaded, float32 throughout, and (for channel ops) channels in whole vectors. */
function simdApplies(tensors: readonly tf.Tensor[], channels?: number): boolean {
  return (
    simdKernels() !== undefined &&
    tensors.every((t) => t.dtype === 'float32') &&
    (channels === undefined || (channels > 0 && channels % 4 === 0))
  );
}

function rows(x: tf.Tensor): tf.Tensor2D {
  return tf.reshape(x, [-1, channelsOf(x)]);
}

/** dy * (x > 0 ? 1 : alpha): the gradient of leakyRelu(x, alpha). */
export function leakyReluGrad(dy: tf.Tensor, x: tf.Tensor, alpha: number): tf.Tensor {
  if (simdApplies([dy, x])) return tf.engine().runKernel(LEAKY_RELU_GRAD, { dy, x }, { alpha }) as tf.Tensor;
  return tf.tidy(() => tf.mul(dy, tf.step(x, alpha)));
}

/** sum over all rows of x, per channel. */
export function channelSum(x: tf.Tensor): tf.Tensor1D {
  if (simdApplies([x], channelsOf(x))) return tf.engine().runKernel(CHANNEL_SUM, { x }) as tf.Tensor1D;
  return tf.tidy(() => tf.sum(rows(x), 0));
}

/** sum over all rows of (x - center)^2, per channel. */
export function channelSquaredDeviationSum(x: tf.Tensor, center: tf.Tensor1D): tf.Tensor1D {
  if (simdApplies([x, center], channelsOf(x))) return tf.engine().runKernel(CHANNEL_SQUARED_DEVIATION_SUM, { x, center }) as tf.Tensor1D;
  return tf.tidy(() => tf.sum(tf.square(tf.sub(rows(x), center)), 0));
}

/** Per channel: sum of dy, and sum of dy * (x - center). */
export function channelSumAndDot(dy: tf.Tensor, x: tf.Tensor, center: tf.Tensor1D): { sum: tf.Tensor1D; dot: tf.Tensor1D } {
  if (simdApplies([dy, x, center], channelsOf(x))) {
    const [sum, dot] = tf.engine().runKernel(CHANNEL_SUM_AND_DOT, { dy, x, center }) as tf.Tensor1D[];
    return { sum, dot };
  }
  return tf.tidy(() => {
    const dyRows = rows(dy);
    return { sum: tf.sum(dyRows, 0), dot: tf.sum(tf.mul(dyRows, tf.sub(rows(x), center)), 0) };
  });
}

/** u * a + k, or u * a + v * b + k when v and b are given; a, b, k per channel. */
export function channelAffine(u: tf.Tensor, a: tf.Tensor1D, k: tf.Tensor1D, v?: tf.Tensor, b?: tf.Tensor1D): tf.Tensor {
  if (simdApplies([u, a, k, ...(v ? [v] : []), ...(b ? [b] : [])], channelsOf(u))) {
    if (v === undefined || b === undefined) return tf.engine().runKernel(CHANNEL_SCALE_SHIFT, { u, a, k }) as tf.Tensor;
    return tf.engine().runKernel(CHANNEL_AFFINE, { u, v, a, b, k }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const scaled = tf.mul(u, a);
    return tf.add(v === undefined || b === undefined ? scaled : tf.add(scaled, tf.mul(v, b)), k);
  });
}
