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
import { composedWasmKernel, cropToConvPadding } from './compose.ts';

/** dW with x as the conv's input and dy as its filter (any stride). */
function filterFromXInput(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  // Rows past (OH-1)*s + kh never meet dy: a negative bottom margin crops them.
  const usedRows = (outHeight - 1) * info.strideHeight + info.filterHeight;
  const usedCols = (outWidth - 1) * info.strideWidth + info.filterWidth;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(x, [batchSize, inHeight * inWidth * inChannels]));
  const fusedRows = tf.reshape(batchLast, [1, inHeight, inWidth * inChannels, batchSize]) as tf.Tensor4D;
  const { cropped, padding } = cropToConvPadding(fusedRows, [
    [top, usedRows - top - inHeight],
    [left * inChannels, (usedCols - left - inWidth) * inChannels],
  ]);
  const dyAsFilter = tf.transpose(dy, [1, 2, 0, 3]);
  const correlated = tf.conv2d(cropped, dyAsFilter, 1, padding, 'NHWC', [
    info.strideHeight,
    info.strideWidth * inChannels,
  ]);
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
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const batchLast = tf.transpose(tf.reshape(dy, [batchSize, outHeight * outWidth * outChannels]));
  const fusedRows = tf.reshape(batchLast, [1, outHeight, outWidth * outChannels, batchSize]) as tf.Tensor4D;
  // dy row oh pairs x row oh + i - top: padded by kh-1-top in front, output row i' = kh-1-i.
  const { cropped, padding } = cropToConvPadding(fusedRows, [
    [filterHeight - 1 - top, inHeight - outHeight + top],
    [(filterWidth - 1 - left) * outChannels, (inWidth - outWidth + left) * outChannels],
  ]);
  const xAsFilter = tf.transpose(x, [1, 2, 0, 3]);
  const correlated = tf.conv2d(cropped, xAsFilter, 1, padding, 'NHWC', [1, outChannels]);
  const flippedTaps = tf.reshape(correlated, [filterHeight * filterWidth, outChannels, inChannels]);
  const taps = tf.transpose(tf.reverse(flippedTaps, 0), [0, 2, 1]);
  return tf.reshape(taps, [filterHeight, filterWidth, inChannels, outChannels]);
}

export const conv2dBackpropFilterConfig = composedWasmKernel(
  tf.Conv2DBackpropFilter,
  ['x', 'dy'],
  ({ x, dy }, attrs: tf.Conv2DBackpropFilterAttrs) => {
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
    );
    if (info.dataFormat !== 'channelsLast') {
      throw new Error(`Conv2DBackpropFilter on wasm supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
    }
    const correlate = info.strideHeight === 1 && info.strideWidth === 1 && info.outChannels < info.inChannels
      ? filterFromDyInput
      : filterFromXInput;
    return correlate(x as tf.Tensor4D, dy as tf.Tensor4D, info);
  },
);
