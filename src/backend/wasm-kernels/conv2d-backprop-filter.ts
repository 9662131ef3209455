// Conv2DBackpropFilter for the wasm backend, which TF.js 4.22 does not ship.
//
// dW[i,j,ci,co] = sum_{b,oh,ow} xPadded[b, oh*s + i, ow*s + j, ci] * dy[b, oh, ow, co].
// Read with ci as the batch, b as the channel and dy as the filter, this is one XNNPACK conv2d:
// input x^T [Ci, H, W, B] (padded inside the conv), filter dy^T [OH, OW, B, Co], stride 1, dilation s, 'valid'.
// Its output [Ci, Hp-(OH-1)s, Wp-(OW-1)s, Co] holds dW at offsets 0..kh-1 (the rest, at most s-1
// rows/columns, are offsets the forward pass never reached) and is sliced and transposed back.
import * as tf from '@tensorflow/tfjs';
import { composedWasmKernel, cropToConvPadding } from './compose.ts';

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
    // Rows past (OH-1)*s + kh never meet dy: a negative bottom margin crops them.
    const usedRows = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
    const usedCols = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
    const { top, left } = info.padInfo;
    const channelsAsBatch = tf.transpose(x as tf.Tensor4D, [3, 1, 2, 0]);
    const { cropped, padding } = cropToConvPadding(channelsAsBatch, [
      [top, usedRows - top - info.inHeight],
      [left, usedCols - left - info.inWidth],
    ]);
    const dyAsFilter = tf.transpose(dy as tf.Tensor4D, [1, 2, 0, 3]);
    const correlated = tf.conv2d(cropped, dyAsFilter, 1, padding, 'NHWC', [info.strideHeight, info.strideWidth]);
    return tf.transpose(correlated, [1, 2, 0, 3]);
  },
);
