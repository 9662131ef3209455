// Convolution geometry the conv gradient kernels share: NHWC conv info, and margins turned into
// explicit conv padding.
import { tf } from '../../util/tf.ts';

/** [before, after] margins of the H and W axes: positive pads with zeros, negative crops. */
export type SpatialMargins = readonly [readonly [number, number], readonly [number, number]];

/**
 * Crops the negative margins off an NHWC tensor and returns the rest as explicit conv padding, so
 * the zero padding is done inside the XNNPACK convolution instead of by a separate copy.
 */
export function cropToConvPadding(
  x: tf.Tensor4D,
  margins: SpatialMargins,
): { cropped: tf.Tensor4D; padding: tf.backend_util.ExplicitPadding } {
  const [[top, bottom], [left, right]] = margins;
  const begin = [0, Math.max(0, -top), Math.max(0, -left), 0];
  const size = [x.shape[0], x.shape[1] - begin[1] - Math.max(0, -bottom), x.shape[2] - begin[2] - Math.max(0, -right), x.shape[3]];
  const needsCrop = size[1] !== x.shape[1] || size[2] !== x.shape[2];
  return {
    cropped: needsCrop ? tf.slice(x, begin, size) : x,
    padding: [
      [0, 0],
      [Math.max(0, top), Math.max(0, bottom)],
      [Math.max(0, left), Math.max(0, right)],
      [0, 0],
    ],
  };
}

/** The attributes both conv backprop kernels carry. */
export interface ConvBackpropAttrs {
  strides: number | [number, number];
  pad: tf.Conv2DBackpropInputAttrs['pad'];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat: 'NHWC' | 'NCHW';
}

/** The forward convolution's geometry, for the NHWC layout these kernels handle; others are refused by name. */
export function nhwcConvInfo(
  kernel: string,
  inShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: ConvBackpropAttrs,
): tf.backend_util.Conv2DInfo {
  const info = tf.backend_util.computeConv2DInfo(
    inShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
  if (info.dataFormat !== 'channelsLast') throw new Error(`${kernel} on wasm supports dataFormat 'NHWC' only, got '${attrs.dataFormat}'`);
  return info;
}
