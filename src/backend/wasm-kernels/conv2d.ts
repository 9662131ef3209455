// Conv2D on wasm for one input and one output channel with a 1-D (k x 1 or 1 x k) filter: the
// separable Gaussian blur of SSIM. XNNPACK runs such a conv as a GEMM with one column and one
// input channel per tap, a badly shaped product. As a product with the banded
// [L, L_out] matrix of the filter, matMul runs it several times faster along W; along H it needs a
// transpose on each side and still wins. (The stock kernel also returns zeros for a
// stride-2 5x1 'same' conv of [2,9,6,1]; the band matrix takes any stride and dilation along the
// filtered axis.) Every other Conv2D runs the stock kernel.
import { tf } from '../../util/tf.ts';
import { overridingWasmKernel } from './compose.ts';

function convInfo(x: tf.TensorInfo, filter: tf.TensorInfo, attrs: tf.Conv2DAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
}

/** The conv leaves every row as it is (a 1 x k filter), with stride 1 along H and no padding. */
function keepsRows(info: tf.backend_util.Conv2DInfo): boolean {
  return info.filterHeight === 1 && info.strideHeight === 1 && info.padInfo.top === 0 && info.outHeight === info.inHeight;
}

/** The conv leaves every column as it is (a k x 1 filter). */
function keepsCols(info: tf.backend_util.Conv2DInfo): boolean {
  return info.filterWidth === 1 && info.strideWidth === 1 && info.padInfo.left === 0 && info.outWidth === info.inWidth;
}

function isLineFilter(info: tf.backend_util.Conv2DInfo): boolean {
  return info.dataFormat === 'channelsLast' && info.inChannels === 1 && info.outChannels === 1 && (keepsRows(info) || keepsCols(info));
}

/**
 * [length, outLength] matrix M with (x M)[o] = sum_t x[o*stride + t*dilation - padBefore] * taps[t],
 * x zero outside.
 */
function bandMatrix(
  taps: Float32Array,
  length: number,
  outLength: number,
  { padBefore, stride, dilation }: { padBefore: number; stride: number; dilation: number },
): tf.Tensor2D {
  const band = new Float32Array(length * outLength);
  for (let o = 0; o < outLength; o++) {
    for (let t = 0; t < taps.length; t++) {
      const l = o * stride + t * dilation - padBefore;
      if (l >= 0 && l < length) band[l * outLength + o] = taps[t];
    }
  }
  return tf.tensor2d(band, [length, outLength]);
}

export const conv2dConfig = overridingWasmKernel(
  tf.Conv2D,
  ['x', 'filter'],
  ({ x, filter }, attrs: tf.Conv2DAttrs) => x.dtype === 'float32' && isLineFilter(convInfo(x, filter, attrs)),
  ({ x, filter }, attrs: tf.Conv2DAttrs) => {
    const info = convInfo(x, filter, attrs);
    const { batchSize, inHeight, inWidth, outHeight, outWidth } = info;
    // The filter is k numbers; wasm reads it synchronously from its own heap.
    const taps = filter.dataSync() as Float32Array;
    if (keepsRows(info)) {
      const along = { padBefore: info.padInfo.left, stride: info.strideWidth, dilation: info.dilationWidth };
      const band = bandMatrix(taps, inWidth, outWidth, along);
      const filtered = tf.matMul(tf.reshape(x, [batchSize * inHeight, inWidth]), band);
      return tf.reshape(filtered, [batchSize, outHeight, outWidth, 1]);
    }
    const along = { padBefore: info.padInfo.top, stride: info.strideHeight, dilation: info.dilationHeight };
    const band = bandMatrix(taps, inHeight, outHeight, along);
    const columns = tf.transpose(tf.reshape(x, [batchSize, inHeight, inWidth]), [0, 2, 1]);
    const filtered = tf.matMul(tf.reshape(columns, [batchSize * inWidth, inHeight]), band);
    const rowsBack = tf.transpose(tf.reshape(filtered, [batchSize, inWidth, outHeight]), [0, 2, 1]);
    return tf.reshape(rowsBack, [batchSize, outHeight, outWidth, 1]);
  },
);
