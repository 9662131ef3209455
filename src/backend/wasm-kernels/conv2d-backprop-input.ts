// Conv2DBackpropInput for the wasm backend, replacing TF.js's plain C++ loop (and so also the
// forward pass of every conv2dTranspose) with one XNNPACK convolution.
//
// Sub-pixel decomposition: with forward stride s and top pad p, write h + p = q*s + r (0 <= r < s).
// Then dx[h] = sum_t dy[q - t] * w[t*s + r], a stride-1 correlation of dy with the r-th phase of
// the flipped filter (T = ceil(k/s) taps, w zero-extended to T*s). All s*s phases are the output
// channels of one conv of dy, [T, T, Co, s*s*Ci]; DepthToSpace interleaves them into the grid
// q*s + r and a slice starting at p drops the padding. Unlike inserting zeros into dy, no
// multiply is spent on a zero.
import * as tf from '@tensorflow/tfjs';
import { composedWasmKernel } from './compose.ts';

/** The conv filter holding every phase: [T_h, T_w, Co, s_h*s_w*Ci]. */
function phaseFilter(filter: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  const [kh, kw, inChannels, outChannels] = filter.shape;
  const tapsHeight = Math.ceil(kh / strideHeight);
  const tapsWidth = Math.ceil(kw / strideWidth);
  const extended = tf.pad(filter, [
    [0, tapsHeight * strideHeight - kh],
    [0, tapsWidth * strideWidth - kw],
    [0, 0],
    [0, 0],
  ]);
  const phases = tf.reshape(extended, [tapsHeight, strideHeight, tapsWidth, strideWidth, inChannels, outChannels]);
  const flipped = tf.transpose(tf.reverse(phases, [0, 2]), [0, 2, 5, 1, 3, 4]);
  return tf.reshape(flipped, [tapsHeight, tapsWidth, outChannels, strideHeight * strideWidth * inChannels]);
}

/** [B, Qh, Qw, sh*sw*C] to [B, Qh*sh, Qw*sw, C], phase (rh, rw) landing at (q*sh + rh, q*sw + rw). */
function interleavePhases(phases: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return phases;
  if (strideHeight === strideWidth) return tf.depthToSpace(phases, strideHeight, 'NHWC');
  const [batch, rows, cols, depth] = phases.shape;
  const channels = depth / (strideHeight * strideWidth);
  const split = tf.reshape(phases, [batch, rows, cols, strideHeight, strideWidth, channels]);
  return tf.reshape(tf.transpose(split, [0, 1, 3, 2, 4, 5]), [
    batch,
    rows * strideHeight,
    cols * strideWidth,
    channels,
  ]);
}

export const conv2dBackpropInputConfig = composedWasmKernel(
  tf.Conv2DBackpropInput,
  ['dy', 'filter'],
  ({ dy, filter }, attrs: tf.Conv2DBackpropInputAttrs) => {
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as [number, number, number, number],
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
    );
    if (info.dataFormat !== 'channelsLast') {
      throw new Error(`Conv2DBackpropInput on wasm supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
    }
    const { strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const kernel = phaseFilter(filter as tf.Tensor4D, sh, sw);
    const [tapsHeight, tapsWidth] = kernel.shape;
    // Enough phase rows q that q*s covers top + H (q = 0 is the first row dy can reach).
    const extraRows = Math.max(0, Math.ceil((top + info.inHeight) / sh) - info.outHeight);
    const extraCols = Math.max(0, Math.ceil((left + info.inWidth) / sw) - info.outWidth);
    const phases = tf.conv2d(dy as tf.Tensor4D, kernel, 1, [
      [0, 0],
      [tapsHeight - 1, extraRows],
      [tapsWidth - 1, extraCols],
      [0, 0],
    ]);
    const grid = interleavePhases(phases, sh, sw);
    return tf.slice(grid, [0, top, left, 0], [-1, info.inHeight, info.inWidth, -1]);
  },
);
