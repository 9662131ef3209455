// Conv2DBackpropInput for the wasm backend, replacing TF.js's plain C++ loop (and so also the
// forward pass of every conv2dTranspose) with XNNPACK convolutions.
//
// Sub-pixel decomposition: with forward stride s and top pad p, write h + p = q*s + r (0 <= r < s).
// Then dx[h] = sum_t dy[q - t] * w[t*s + r], a stride-1 correlation of dy with the r-th phase of
// the flipped filter (T_r = ceil((k - r)/s) taps). One conv per row phase r_h computes every
// column phase r_w at once as its output channels, [T_rh, T_w, Co, s_w*Ci] (T_w = ceil(k/s_w),
// the filter zero-extended to T_w*s_w columns): its output [B, Q, Q_w, s_w*Ci] already is dx's
// rows q*s_h + r_h with the columns interleaved, so the row phases are joined by one concat and no
// transpose. Inserting s-1 zeros between dy's samples instead would multiply s*s times too often;
// here only the column zero-extension costs extra (12 tap products for 9 at k=3, s=2). The padding
// p is dropped by starting the phases late (and, when p is not a multiple of s, a slice).
import * as tf from '@tensorflow/tfjs';
import { composedWasmKernel, cropToConvPadding } from './compose.ts';

/**
 * The conv filter of row phase `rowPhase`, [T_rh, T_w, Co, s_w*Ci]: entry (t_h, t_w, co, r_w, ci)
 * is w[(T_rh-1-t_h)*s_h + r_h, (T_w-1-t_w)*s_w + r_w, ci, co], or 0 past the filter's edge.
 * The tap shuffle is a 0/1 selection matrix times the taps (exact for finite weights), then one
 * rank-4 transpose: on wasm, Gather, Reverse, StridedSlice and rank-6 Transpose are generic per-element
 * loops that take 200+ ms on a 3x3x256x512 filter, where this takes ~40 ms.
 */
function rowPhaseFilter(filter: tf.Tensor4D, strideHeight: number, strideWidth: number, rowPhase: number): tf.Tensor4D {
  const [kh, kw, inChannels, outChannels] = filter.shape;
  const tapsHeight = Math.ceil((kh - rowPhase) / strideHeight);
  const tapsWidth = Math.ceil(kw / strideWidth);
  const rows = tapsHeight * tapsWidth * strideWidth;
  const selection = new Float32Array(rows * kh * kw);
  let row = 0;
  for (let th = 0; th < tapsHeight; th++) {
    for (let tw = 0; tw < tapsWidth; tw++) {
      for (let rw = 0; rw < strideWidth; rw++, row++) {
        const i = (tapsHeight - 1 - th) * strideHeight + rowPhase;
        const j = (tapsWidth - 1 - tw) * strideWidth + rw;
        if (j < kw) selection[row * kh * kw + i * kw + j] = 1;
      }
    }
  }
  const taps = tf.reshape(filter, [kh * kw, inChannels * outChannels]);
  const selected = tf.matMul(tf.tensor2d(selection, [rows, kh * kw]), taps);
  const phasesInner = tf.transpose(tf.reshape(selected, [tapsHeight * tapsWidth, strideWidth, inChannels, outChannels]), [
    0, 3, 1, 2,
  ]);
  return tf.reshape(phasesInner, [tapsHeight, tapsWidth, outChannels, strideWidth * inChannels]);
}

interface PhaseRange {
  /** [before, after] margins of dy along this axis for the phase conv (negative crops) */
  margins: readonly [number, number];
  /** where dx starts in the interleaved grid */
  offset: number;
  /** phase rows (or columns) q made, from q = floor(pad/stride) on */
  count: number;
}

/**
 * One spatial axis of a phase conv with `taps` taps: forward pad `pad`, stride `stride`, dx size
 * `size`, dy size `dySize`. Phase rows q land on grid rows q*s + r, and dx row h is grid row h + pad:
 * the first floor(pad/s) phase rows are never needed, so the conv's leading padding shrinks by
 * that many (or dy is cropped), and enough rows are made to cover dx from there.
 */
function phaseRange(pad: number, stride: number, size: number, dySize: number, taps: number): PhaseRange {
  const skipped = Math.floor(pad / stride);
  const offset = pad - skipped * stride;
  const count = Math.ceil((offset + size) / stride);
  const before = taps - 1 - skipped;
  // conv output length = dySize + before + after - taps + 1 = count
  return { margins: [before, count - dySize - before + taps - 1], offset, count };
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
    const { strideHeight: sh, strideWidth: sw, batchSize, inChannels } = info;
    const tapsWidth = Math.ceil(info.filterWidth / sw);
    const cols = phaseRange(info.padInfo.left, sw, info.inWidth, info.outWidth, tapsWidth);
    const rowsWith = (taps: number): PhaseRange => phaseRange(info.padInfo.top, sh, info.inHeight, info.outHeight, taps);
    // offset and count do not depend on the taps
    const { offset: rowOffset, count: rowCount } = rowsWith(1);
    const rowPhases: tf.Tensor[] = [];
    for (let rowPhase = 0; rowPhase < Math.min(sh, info.filterHeight); rowPhase++) {
      const kernel = rowPhaseFilter(filter as tf.Tensor4D, sh, sw, rowPhase);
      const { cropped, padding } = cropToConvPadding(dy as tf.Tensor4D, [rowsWith(kernel.shape[0]).margins, cols.margins]);
      const phase = tf.conv2d(cropped, kernel, 1, padding);
      // [B, Q, 1, Q_w*s_w*Ci]: the row phases are then joined on axis 2, rows q*s_h + r_h.
      rowPhases.push(tf.reshape(phase, [batchSize, rowCount, 1, cols.count * sw * inChannels]));
    }
    // A filter shorter than the stride leaves row phases no tap reaches: those dx rows are 0.
    for (let rowPhase = rowPhases.length; rowPhase < sh; rowPhase++) {
      rowPhases.push(tf.zeros([batchSize, rowCount, 1, cols.count * sw * inChannels]));
    }
    const joined = rowPhases.length === 1 ? rowPhases[0] : tf.concat(rowPhases, 2);
    const grid = tf.reshape(joined, [batchSize, rowCount * sh, cols.count * sw, inChannels]) as tf.Tensor4D;
    const [, gridHeight, gridWidth] = grid.shape;
    if (rowOffset === 0 && cols.offset === 0 && gridHeight === info.inHeight && gridWidth === info.inWidth) return grid;
    return tf.slice(grid, [0, rowOffset, cols.offset, 0], [-1, info.inHeight, info.inWidth, -1]);
  },
);
