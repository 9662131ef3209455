// DepthwiseConv2dNativeBackpropFilter for the wasm backend, which TF.js 4.22 does not ship.
//
// dW[i,j,c,m] = sum_{b,oh,ow} xPadded[b, oh*s + i*d, ow*s + j*d, c] * dy[b, oh, ow, c*M + m].
// With batch and channel fused into the channel axis, this is one stride-1 depthwise conv:
// input x as [1, H, W, B*C], filter dy as [OH, OW, B*C, M], dilation s. Its output at spatial
// offset u holds the sum for tap offset u; taps sit at multiples of the forward dilation d. The
// per-batch partial results are then summed over B.
import { tf } from '../../util/tf.ts';
import { composedWasmKernel } from './compose.ts';
import { cropToConvPadding } from './conv-util.ts';

export const depthwiseConv2dNativeBackpropFilterConfig = composedWasmKernel(
  tf.DepthwiseConv2dNativeBackpropFilter,
  ['x', 'dy'],
  ({ x, dy }, attrs: tf.DepthwiseConv2dNativeBackpropFilterAttrs) => {
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      true,
    );
    const [kh, kw, channels, multiplier] = attrs.filterShape;
    const [batch, inHeight, inWidth] = x.shape;
    const [, outHeight, outWidth] = dy.shape;
    const spanHeight = (kh - 1) * info.dilationHeight + 1;
    const spanWidth = (kw - 1) * info.dilationWidth + 1;
    // Rows past (OH-1)*s + span never meet dy: a negative bottom margin crops them.
    const usedRows = (outHeight - 1) * info.strideHeight + spanHeight;
    const usedCols = (outWidth - 1) * info.strideWidth + spanWidth;
    const { top, left } = info.padInfo;
    const fused = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, inHeight, inWidth, batch * channels]) as tf.Tensor4D;
    const { cropped, padding } = cropToConvPadding(fused, [
      [top, usedRows - top - inHeight],
      [left, usedCols - left - inWidth],
    ]);
    const dyAsFilter = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [outHeight, outWidth, batch * channels, multiplier]) as tf.Tensor4D;
    const correlated = tf.depthwiseConv2d(cropped, dyAsFilter, 1, padding, 'NHWC', [info.strideHeight, info.strideWidth]);
    const taps =
      info.dilationHeight === 1 && info.dilationWidth === 1
        ? correlated
        : tf.stridedSlice(correlated, [0, 0, 0, 0], correlated.shape, [1, info.dilationHeight, info.dilationWidth, 1]);
    return tf.sum(tf.reshape(taps, [kh, kw, batch, channels, multiplier]), 2);
  },
);
