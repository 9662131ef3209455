// Conv2DBackpropInput for the wasm backend, replacing TF.js's plain C++ loop (and so also the
// forward pass of every conv2dTranspose) with one XNNPACK convolution.
//
// Sub-pixel decomposition: with forward stride s and top pad p, write h + p = q*s + r (0 <= r < s).
// Then dx[h] = sum_t dy[q - t] * w[t*s + r], a stride-1 correlation of dy with the r-th phase of
// the flipped filter (T = ceil(k/s) taps, w zero-extended to T*s). All s*s phases are the output
// channels of one conv of dy, [T, T, Co, s*s*Ci]; a transpose interleaves them into the grid
// q*s + r and a slice starting at p drops the padding. Inserting s-1 zeros between dy's samples
// instead would multiply s*s times too often; here only the filter's zero-extension (to T*s taps
// per axis: 16 taps for 9 at k=3, s=2) costs extra.
import * as tf from '@tensorflow/tfjs';
import { composedWasmKernel } from './compose.ts';

/**
 * The conv filter holding every phase, [T_h, T_w, Co, s_h*s_w*Ci]: entry (t_h, t_w, co, r_h, r_w, ci)
 * is w[(T_h-1-t_h)*s_h + r_h, (T_w-1-t_w)*s_w + r_w, ci, co], or 0 past the filter's edge.
 * The tap shuffle is a 0/1 selection matrix times the taps (exact for finite weights), then one
 * rank-4 transpose: on wasm, Gather, Reverse, StridedSlice and rank-6 Transpose are generic per-element
 * loops that take 200+ ms on a 3x3x256x512 filter, where this takes ~40 ms.
 */
function phaseFilter(filter: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  const [kh, kw, inChannels, outChannels] = filter.shape;
  const tapsHeight = Math.ceil(kh / strideHeight);
  const tapsWidth = Math.ceil(kw / strideWidth);
  const phases = strideHeight * strideWidth;
  const rows = tapsHeight * tapsWidth * phases;
  const selection = new Float32Array(rows * kh * kw);
  let row = 0;
  for (let th = 0; th < tapsHeight; th++) {
    for (let tw = 0; tw < tapsWidth; tw++) {
      for (let rh = 0; rh < strideHeight; rh++) {
        for (let rw = 0; rw < strideWidth; rw++, row++) {
          const i = (tapsHeight - 1 - th) * strideHeight + rh;
          const j = (tapsWidth - 1 - tw) * strideWidth + rw;
          if (i < kh && j < kw) selection[row * kh * kw + i * kw + j] = 1;
        }
      }
    }
  }
  const taps = tf.reshape(filter, [kh * kw, inChannels * outChannels]);
  const selected = tf.matMul(tf.tensor2d(selection, [rows, kh * kw]), taps);
  const phasesInner = tf.transpose(tf.reshape(selected, [tapsHeight * tapsWidth, phases, inChannels, outChannels]), [
    0, 3, 1, 2,
  ]);
  return tf.reshape(phasesInner, [tapsHeight, tapsWidth, outChannels, phases * inChannels]);
}

/**
 * [B, Qh, Qw, sh*sw*C] to [B, Qh*sh, Qw*sw, C], phase (rh, rw) landing at (q*sh + rh, q*sw + rw).
 * One rank-4 transpose that swaps Qw and sh; wasm's DepthToSpace is several times slower.
 */
function interleavePhases(phases: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return phases;
  const [batch, rows, cols, depth] = phases.shape;
  const channels = depth / (strideHeight * strideWidth);
  const split = tf.reshape(phases, [batch * rows, cols, strideHeight, strideWidth * channels]);
  const swapped = tf.transpose(split, [0, 2, 1, 3]);
  split.dispose(); // a view of phases: disposing it lets the caller free phases' buffer early
  return tf.reshape(swapped, [batch, rows * strideHeight, cols * strideWidth, channels]);
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
    // Freed now rather than at the end of the kernel: at 256x256 each of these is hundreds of MB
    // of the wasm heap's 4 GB.
    if (grid !== phases) phases.dispose();
    return tf.slice(grid, [0, top, left, 0], [-1, info.inHeight, info.inWidth, -1]);
  },
);
