// Conv2DBackpropFilter for the wasm backend, which TF.js 4.22 does not ship.
//
// dW[i,j,ci,co] = sum_{b,oh,ow} xPadded[b, oh*s + i, ow*s + j, ci] * dy[b, oh, ow, co].
// One XNNPACK conv computes it with b as the contracted channel axis and dy as the filter:
// input x as [1, H, W*Ci, B] (a 2-D transpose of x viewed as [B, H*W*Ci]), filter dy as
// [OH, OW, B, Co], stride 1, dilation (s_h, s_w*Ci). Along the fused W*Ci axis, output position
// j*Ci + ci reads input positions (j + ow*s_w)*Ci + ci, so the output [1, kh, kw*Ci, Co] is dW
// in its final layout. Why this layout: wasm's Transpose is a generic per-element loop, and the
// 2-D transpose of x is ~2.5x faster than the 4-D one that putting Ci in the batch axis needs (the
// output then needs no transpose at all); the padding is done inside the conv, per image row.
import * as tf from '@tensorflow/tfjs';
import { composedWasmKernel, cropToConvPadding, nhwcConvInfo } from './compose.ts';

/** Most floats one conv takes as its filter when the filter is split. */
const FILTER_CHUNK_FLOATS = 2 ** 19;

interface Correlation {
  /** zero rows padded before the input (negative: rows cropped) */
  leadingRows: number;
  /** output rows */
  outRows: number;
  /** [before, after] margins of the input's columns */
  colMargins: readonly [number, number];
  dilations: [number, number];
}

/**
 * The stride-1 conv of `input` ([1, R, C, B]) with `filter` ([FR, FC, B, N]), as one conv or, for
 * a large filter, the sum of convs over chunks of its rows. Why: XNNPACK's GEMM streams the whole
 * packed filter once per few output pixels, and these filters hold a whole activation (dy or x):
 * chunks that fit the 2 MB L2 cache run ~1.5x faster ([64,64,64,32] x, stride 2: the convs take
 * 104 ms instead of 163 ms, slices included). Chunk rows first..end-1 meet padded input rows
 * first*d .. (end-1)*d + outRows - 1; rows outside the input are zeros.
 */
function correlateInRowChunks(input: tf.Tensor4D, filter: tf.Tensor4D, conv: Correlation): tf.Tensor {
  const [filterRows, filterCols, channels, outChannels] = filter.shape;
  const rowFloats = filterCols * channels * outChannels;
  const rowsPerChunk =
    filterRows * rowFloats > 2 * FILTER_CHUNK_FLOATS ? Math.max(1, Math.floor(FILTER_CHUNK_FLOATS / rowFloats)) : filterRows;
  const [rowDilation] = conv.dilations;
  const parts: tf.Tensor[] = [];
  for (let first = 0; first < filterRows; first += rowsPerChunk) {
    const end = Math.min(filterRows, first + rowsPerChunk);
    const chunk = end - first === filterRows ? filter : tf.slice(filter, [first, 0, 0, 0], [end - first, -1, -1, -1]);
    const { cropped, padding } = cropToConvPadding(input, [
      [conv.leadingRows - first * rowDilation, (end - 1) * rowDilation + conv.outRows - conv.leadingRows - input.shape[1]],
      conv.colMargins,
    ]);
    parts.push(tf.conv2d(cropped, chunk, 1, padding, 'NHWC', conv.dilations));
  }
  return parts.length === 1 ? parts[0] : tf.addN(parts);
}

/** dW with x as the conv's input and dy as its filter (any stride). */
function filterFromXInput(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize, inHeight, inWidth, inChannels, outWidth, outChannels } = info;
  // Columns past (OW-1)*s + kw never meet dy: a negative right margin crops them.
  const usedCols = (outWidth - 1) * info.strideWidth + info.filterWidth;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(x, [batchSize, inHeight * inWidth * inChannels]));
  const fusedRows = tf.reshape(batchLast, [1, inHeight, inWidth * inChannels, batchSize]) as tf.Tensor4D;
  const dyAsFilter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  const correlated = correlateInRowChunks(fusedRows, dyAsFilter, {
    leadingRows: top,
    outRows: info.filterHeight,
    colMargins: [left * inChannels, (usedCols - left - inWidth) * inChannels],
    dilations: [info.strideHeight, info.strideWidth * inChannels],
  });
  return tf.reshape(correlated, [info.filterHeight, info.filterWidth, inChannels, outChannels]);
}

/**
 * dW for stride 1 with the roles swapped: dy [1, OH, OW*Co, B] is the input and x [H, W, B, Ci]
 * the filter, dilation (1, Co). Output position (i', j'*Co + co) then holds the tap (kh-1-i',
 * kw-1-j'), channel ci. Why: with few output channels (the 32->3 image layer) the x-as-input conv
 * has only Co = 3 GEMM columns, a poor fit for XNNPACK's kernels; here it has Ci, and x needs only
 * the block copy [1,2,0,3] instead of a full transpose. The flipped, [kh, kw, Co, Ci] result is tiny.
 */
function filterFromDyInput(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(dy, [batchSize, outHeight * outWidth * outChannels]));
  const fusedRows = tf.reshape(batchLast, [1, outHeight, outWidth * outChannels, batchSize]) as tf.Tensor4D;
  // dy row oh pairs x row oh + i - top: padded by kh-1-top in front, output row i' = kh-1-i.
  const xAsFilter = tf.transpose(x, [1, 2, 0, 3]) as tf.Tensor4D;
  const correlated = correlateInRowChunks(fusedRows, xAsFilter, {
    leadingRows: filterHeight - 1 - top,
    outRows: filterHeight,
    colMargins: [(filterWidth - 1 - left) * outChannels, (inWidth - outWidth + left) * outChannels],
    dilations: [1, outChannels],
  });
  const flippedTaps = tf.reshape(correlated, [filterHeight * filterWidth, outChannels, inChannels]);
  const taps = tf.transpose(tf.reverse(flippedTaps, 0), [0, 2, 1]);
  return tf.reshape(taps, [filterHeight, filterWidth, inChannels, outChannels]);
}

export const conv2dBackpropFilterConfig = composedWasmKernel(
  tf.Conv2DBackpropFilter,
  ['x', 'dy'],
  ({ x, dy }, attrs: tf.Conv2DBackpropFilterAttrs) => {
    const info = nhwcConvInfo('Conv2DBackpropFilter', x.shape as [number, number, number, number], attrs.filterShape, attrs);
    const correlate = info.strideHeight === 1 && info.strideWidth === 1 && info.outChannels < info.inChannels
      ? filterFromDyInput
      : filterFromXInput;
    return correlate(x as tf.Tensor4D, dy as tf.Tensor4D, info);
  },
);
