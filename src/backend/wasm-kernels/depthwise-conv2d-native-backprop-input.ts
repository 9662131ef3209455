// DepthwiseConv2dNativeBackpropInput for the wasm backend, which TF.js 4.22 does not ship.
//
// The input gradient of a strided, dilated depthwise conv is a stride-1 depthwise conv of dy with
// s-1 zeros inserted between its samples, padded so every dx position sees the taps that reached
// it, using the spatially flipped filter at the same dilation. The channel multiplier M makes dy
// have C*M channels: convolving each with its own flipped tap and summing each group of M gives dx.
import { tf } from '../../util/tf.ts';
import { composedWasmKernel } from './compose.ts';
import { cropToConvPadding } from './conv-util.ts';

/** dy with stride-1 zeros after every sample along H and W: [B, OH*sh, OW*sw, C]. */
function interleaveZeros(dy: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  if (strideHeight === 1 && strideWidth === 1) return dy;
  const [batch, outHeight, outWidth, channels] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [batch, outHeight, 1, outWidth, 1, channels]), [
    [0, 0],
    [0, 0],
    [0, strideHeight - 1],
    [0, 0],
    [0, strideWidth - 1],
    [0, 0],
  ]);
  return tf.reshape(spread, [batch, outHeight * strideHeight, outWidth * strideWidth, channels]);
}

export const depthwiseConv2dNativeBackpropInputConfig = composedWasmKernel(
  tf.DepthwiseConv2dNativeBackpropInput,
  ['dy', 'filter'],
  ({ dy, filter }, attrs: tf.DepthwiseConv2dNativeBackpropInputAttrs) => {
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape,
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
      true,
    );
    const [kh, kw, channels, multiplier] = filter.shape;
    const spanHeight = (kh - 1) * info.dilationHeight;
    const spanWidth = (kw - 1) * info.dilationWidth;
    const { top, left } = info.padInfo;
    const dilatedDy = interleaveZeros(dy as tf.Tensor4D, info.strideHeight, info.strideWidth);
    const { cropped, padding } = cropToConvPadding(dilatedDy, [
      [spanHeight - top, info.inHeight + top - info.outHeight * info.strideHeight],
      [spanWidth - left, info.inWidth + left - info.outWidth * info.strideWidth],
    ]);
    const flipped = tf.reshape(tf.reverse(filter, [0, 1]), [kh, kw, channels * multiplier, 1]) as tf.Tensor4D;
    const perTap = tf.depthwiseConv2d(cropped, flipped, 1, padding, 'NHWC', [info.dilationHeight, info.dilationWidth]);
    if (multiplier === 1) return perTap;
    const [batch, height, width] = perTap.shape;
    return tf.sum(tf.reshape(perTap, [batch, height, width, channels, multiplier]), 4);
  },
);
