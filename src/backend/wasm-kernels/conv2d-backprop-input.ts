// Conv2DBackpropInput for the wasm backend, replacing TF.js's plain C++ loop (and so also the
// forward pass of every conv2dTranspose) with XNNPACK convolutions.
//
// Sub-pixel decomposition: with forward stride s and top pad p, write h + p = q*s + r (0 <= r < s).
// Then dx[h] = sum_t dy[q - t] * w[t*s + r], a stride-1 correlation of dy with the r-th phase of
// the flipped filter (T_r = ceil((k - r)/s) taps). Each phase (r_h, r_w) is one conv of dy with
// exactly its own taps, [T_rh, T_rw, Co, Ci], so the convs do no more multiplications than the
// forward conv (zero insertion would do s*s times as many). Their outputs [B, Q, Q_w, Ci] are
// joined by two concats, columns then rows, into the grid q*s + r; no transpose of dx is needed.
// For few dx channels, the column phases of a row phase share one conv instead (see below).
// The padding p is dropped by starting the phases late (and, when p is not a multiple of s, a slice).
// Strided cases with 8+ dy channels take one GEMM and a col2im instead (gemmThenCol2im).
import { tf } from '../../util/tf.ts';
import { composedWasmKernel } from './compose.ts';
import { cropToConvPadding, nhwcConvInfo } from './conv-util.ts';
import { COL2IM, type Col2ImAttrs } from './kernel-names.ts';

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
 * that many (or dy is cropped), and enough rows are made to cover dx from there. Offset and count
 * do not depend on the taps.
 */
function phaseRange(pad: number, stride: number, size: number, dySize: number, taps: number): PhaseRange {
  const skipped = Math.floor(pad / stride);
  const offset = pad - skipped * stride;
  const count = Math.ceil((offset + size) / stride);
  const before = taps - 1 - skipped;
  // conv output length = dySize + before + after - taps + 1 = count
  return { margins: [before, count - dySize - before + taps - 1], offset, count };
}

/**
 * The conv filter of row phase r_h and the column phases `colPhases`, [T_rh, T_c, Co, n*Ci] with
 * n = colPhases.length and T_c the most taps any of them has: entry (t_h, t_w, co, p, ci) is the tap
 * ((T_rh-1-t_h)*s_h + r_h, (T_c-1-t_w)*s_w + colPhases[p]) of `flipped` ([kh*kw, Co*Ci], the filter
 * with Ci and Co swapped), or 0 past the filter's edge. The tap choice is a 0/1 selection matrix
 * times the taps (exact for finite weights): on wasm, Gather, Reverse and StridedSlice are generic
 * per-element loops.
 */
function phaseFilter(
  flipped: tf.Tensor2D,
  [kh, kw, inChannels, outChannels]: readonly number[],
  [strideHeight, strideWidth]: readonly [number, number],
  rowPhase: number,
  colPhases: readonly number[],
): tf.Tensor4D {
  const tapsHeight = Math.ceil((kh - rowPhase) / strideHeight);
  const tapsWidth = Math.max(...colPhases.map((colPhase) => Math.ceil((kw - colPhase) / strideWidth)));
  const rows = tapsHeight * tapsWidth * colPhases.length;
  const selection = new Float32Array(rows * kh * kw);
  let row = 0;
  for (let th = 0; th < tapsHeight; th++) {
    for (let tw = 0; tw < tapsWidth; tw++) {
      for (const colPhase of colPhases) {
        const i = (tapsHeight - 1 - th) * strideHeight + rowPhase;
        const j = (tapsWidth - 1 - tw) * strideWidth + colPhase;
        if (j < kw) selection[row * kh * kw + i * kw + j] = 1;
        row++;
      }
    }
  }
  const selected = tf.matMul(tf.tensor2d(selection, [rows, kh * kw]), flipped);
  const grouped = tf.reshape(selected, [tapsHeight * tapsWidth, colPhases.length, outChannels, inChannels]);
  const channelsLast = colPhases.length === 1 ? grouped : tf.transpose(grouped, [0, 2, 1, 3]);
  return tf.reshape(channelsLast, [tapsHeight, tapsWidth, outChannels, colPhases.length * inChannels]);
}

/** Joins `parts` (equal shapes) so that part p's entries interleave at index i*parts + p of `axis`. */
function interleave(parts: tf.Tensor[], axis: number): tf.Tensor {
  if (parts.length === 1) return parts[0];
  return tf.concat(
    parts.map((part) => tf.expandDims(part, axis + 1)),
    axis + 1,
  );
}

/**
 * Below this many dx channels, one conv per row phase makes every column phase at once (its
 * output channels, the filter zero-extended to the longest phase): XNNPACK's GEMM wants 8+ output
 * channels, and the column concat of a many-pixel, few-channel dx costs more than the extra taps
 * (the Ci = 3 output layer of `npm run bench:convtranspose`).
 */
const PER_PHASE_MIN_CHANNELS = 32;

/** Most floats the GEMM's columns may take (128 MB); larger cases run the phase convs. */
const MAX_COLUMN_FLOATS = 2 ** 25;

/**
 * Strided convs with 8+ output channels (the GEMM's inner dimension) and dx channels in whole
 * vectors take the GEMM, faster on every strided decoder shape of `npm run bench:convtranspose` at
 * batch 64. At stride 1 the phase path is one plain conv, which wins.
 */
function takesGemm(info: tf.backend_util.Conv2DInfo): boolean {
  const columns = info.batchSize * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
  return (
    (info.strideHeight > 1 || info.strideWidth > 1) && info.inChannels % 4 === 0 && info.outChannels >= 8 && columns <= MAX_COLUMN_FLOATS
  );
}

/**
 * dx as one GEMM and a col2im: cols = dy [B*OH*OW, Co] x W^T, one row of kh*kw*Ci values per
 * output position (what each position sends back to the input pixels under its filter), then
 * col2im adds every row into dx where it lands. One well-shaped GEMM instead of stride^2 small
 * convs over tiny images plus the filter phases and interleaving concats.
 */
function gemmThenCol2im(dy: tf.Tensor4D, filter: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor {
  const { outChannels } = info;
  const cols = tf.matMul(
    tf.reshape(dy, [-1, outChannels]) as tf.Tensor2D,
    tf.reshape(filter, [-1, outChannels]) as tf.Tensor2D,
    false,
    true,
  );
  const attrs: Col2ImAttrs = {
    inputShape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels],
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
  return tf.engine().runKernel(COL2IM, { cols }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

export const conv2dBackpropInputConfig = composedWasmKernel(
  tf.Conv2DBackpropInput,
  ['dy', 'filter'],
  ({ dy, filter }, attrs: tf.Conv2DBackpropInputAttrs) => {
    const info = nhwcConvInfo('Conv2DBackpropInput', attrs.inputShape, filter.shape as [number, number, number, number], attrs);
    if (takesGemm(info)) return gemmThenCol2im(dy as tf.Tensor4D, filter as tf.Tensor4D, info);
    const { strideHeight: sh, strideWidth: sw, batchSize, inChannels, outChannels } = info;
    const [kh, kw] = [info.filterHeight, info.filterWidth];
    const rowsWith = (taps: number): PhaseRange => phaseRange(info.padInfo.top, sh, info.inHeight, info.outHeight, taps);
    const colsWith = (taps: number): PhaseRange => phaseRange(info.padInfo.left, sw, info.inWidth, info.outWidth, taps);
    const [rows, cols] = [rowsWith(1), colsWith(1)];
    const flipped = tf.reshape(tf.transpose(filter, [0, 1, 3, 2]), [kh * kw, outChannels * inChannels]) as tf.Tensor2D;
    const colGroups =
      inChannels >= PER_PHASE_MIN_CHANNELS
        ? Array.from({ length: sw }, (_, colPhase) => [colPhase])
        : [Array.from({ length: sw }, (_, colPhase) => colPhase)];
    const gridRows: tf.Tensor[] = [];
    for (let rowPhase = 0; rowPhase < sh; rowPhase++) {
      const phases = colGroups.map((colPhases) => {
        if (rowPhase >= kh || colPhases[0] >= kw) {
          // a filter shorter than the stride: no tap reaches these dx positions
          return tf.zeros([batchSize, rows.count, cols.count, colPhases.length * inChannels]);
        }
        const kernel = phaseFilter(flipped, filter.shape, [sh, sw], rowPhase, colPhases);
        const margins = [rowsWith(kernel.shape[0]).margins, colsWith(kernel.shape[1]).margins] as const;
        const { cropped, padding } = cropToConvPadding(dy as tf.Tensor4D, margins);
        return tf.conv2d(cropped, kernel, 1, padding);
      });
      gridRows.push(interleave(phases, 2));
    }
    const grid = tf.reshape(interleave(gridRows, 1), [batchSize, rows.count * sh, cols.count * sw, inChannels]);
    const [, gridHeight, gridWidth] = grid.shape;
    if (rows.offset === 0 && cols.offset === 0 && gridHeight === info.inHeight && gridWidth === info.inWidth) return grid;
    return tf.slice(grid, [0, rows.offset, cols.offset, 0], [-1, info.inHeight, info.inWidth, -1]);
  },
);
