// Add on wasm where the second input is one value per channel (a conv's bias, [C] or
// [1, ..., 1, C]) and the first a whole activation: one pass of the SIMD module's affine map with
// scale 1. TF.js's wasm Add takes such a broadcast through its generic path, several times slower
// (bench:kernels' Add cases). Channels that do not fill whole vectors (an image's 3) are read as
// rows of lcm(C, 4) values with the bias repeated to match.
import { tf } from '../../util/tf.ts';
import { simdKernels } from '../simd/module.ts';
import { overridingWasmKernel } from './compose.ts';
import { CHANNEL_SCALE_SHIFT } from './kernel-names.ts';

/** Below this many values the stock kernel's generic path costs less than the extra ops here. */
const MIN_VALUES = 4096;

/** Channels of `a` that `b` holds one value each of, or undefined where `b` is not such a vector. */
function biasChannels(a: tf.TensorInfo, b: tf.TensorInfo): number | undefined {
  const channels = a.shape[a.shape.length - 1];
  if (channels === undefined || a.shape.length < 2 || b.shape.length > a.shape.length) return undefined;
  const leading = b.shape.slice(0, -1);
  return b.shape[b.shape.length - 1] === channels && leading.every((d) => d === 1) ? channels : undefined;
}

/** The row width the SIMD pass reads: the fewest whole rows of channels that fill vectors of 4. */
function rowWidth(channels: number): number {
  let width = channels;
  while (width % 4 !== 0) width += channels;
  return width;
}

export const addConfig = overridingWasmKernel(
  tf.Add,
  ['a', 'b'],
  ({ a, b }) => {
    const channels = biasChannels(a, b);
    const size = tf.util.sizeFromShape(a.shape);
    return (
      simdKernels() !== undefined &&
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      channels !== undefined &&
      size >= MIN_VALUES &&
      size % rowWidth(channels) === 0
    );
  },
  ({ a, b }) => {
    const channels = a.shape[a.rank - 1]!;
    const width = rowWidth(channels);
    const bias = tf.reshape(b, [channels]);
    const shift = width === channels ? bias : tf.tile(bias, [width / channels]);
    const y = tf.engine().runKernel(CHANNEL_SCALE_SHIFT, { u: tf.reshape(a, [-1, width]), a: tf.ones([width]), k: shift }) as tf.Tensor;
    return tf.reshape(y, a.shape);
  },
);
