// The geometry the native convolution kernels share: TF.js's NHWC conv description turned into
// ONNX's explicit pads, and the im2col of an NHWC tensor written as ONNX nodes (a Pad, one strided
// Slice per filter tap and a Concat), so a convolution or its filter gradient becomes one GEMM.
import { tf } from '../../util/tf.ts';
import type { OnnxInt64Initializer, OnnxNode } from './onnx-model.ts';

/** TF.js's description of an NHWC conv, or undefined for a layout the native kernels do not take. */
export function nhwcInfo(
  inShape: readonly number[],
  filterShape: readonly number[],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: tf.Conv2DAttrs['pad'],
  dimRoundingMode: tf.Conv2DAttrs['dimRoundingMode'],
  dataFormat: 'NHWC' | 'NCHW',
): tf.backend_util.Conv2DInfo | undefined {
  if (dataFormat !== 'NHWC' || inShape.length !== 4 || filterShape.length !== 4) return undefined;
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const { top, left } = info.padInfo;
  if (top < 0 || left < 0) return undefined;
  // The rows and columns that the conv reads past the input's bottom and right edge (may be
  // negative: a 'valid' conv whose stride does not divide leaves the last rows unread).
  if (bottomPad(info) < -info.strideHeight || rightPad(info) < -info.strideWidth) return undefined;
  return info;
}

/** Rows read past the bottom edge: negative when the last rows are never read. */
export function bottomPad(info: tf.backend_util.Conv2DInfo): number {
  return (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight - info.inHeight - info.padInfo.top;
}

/** Columns read past the right edge: negative when the last columns are never read. */
export function rightPad(info: tf.backend_util.Conv2DInfo): number {
  return (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth - info.inWidth - info.padInfo.left;
}

/** ONNX `pads` ([top, left, bottom, right]) of the conv, never negative. */
export function onnxPads(info: tf.backend_util.Conv2DInfo): number[] {
  return [info.padInfo.top, info.padInfo.left, Math.max(0, bottomPad(info)), Math.max(0, rightPad(info))];
}

/** A cache key for the conv's geometry. */
export function geometryKey(info: tf.backend_util.Conv2DInfo): string {
  return [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
    info.outHeight,
    info.outWidth,
  ].join(',');
}

/**
 * Most floats an im2col buffer may take (16 MB): under glibc's largest mmap threshold, so that it
 * reuses freed memory rather than fresh pages on every call (./batch-slices.ts). Larger cases use
 * the other graphs, or slices of the batch.
 */
export const MAX_IM2COL_FLOATS = 2 ** 22;

export function im2colSize(info: tf.backend_util.Conv2DInfo): number {
  return info.batchSize * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
}

export interface Im2col {
  nodes: OnnxNode[];
  initializers: OnnxInt64Initializer[];
  /** [B*OH*OW, kh*kw*Ci]: row p holds the input values under the filter at output position p, taps in HWI order. */
  output: string;
}

/** The input under each filter tap: a strided Slice of the padded NHWC `x` per tap, [B, OH, OW, Ci] each, in HWI order. */
export function tapSlices(
  x: string,
  info: tf.backend_util.Conv2DInfo,
  prefix: string,
): { nodes: OnnxNode[]; initializers: OnnxInt64Initializer[]; taps: string[] } {
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInt64Initializer[] = [];
  const name = (n: string): string => `${prefix}${n}`;
  const [top, left, bottom, right] = onnxPads(info);
  let padded = x;
  if (top + left + bottom + right > 0) {
    initializers.push({ name: name('pads'), values: [0, top, left, 0, 0, bottom, right, 0] });
    nodes.push({ op: 'Pad', inputs: [x, name('pads')], outputs: [name('padded')] });
    padded = name('padded');
  }
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const rowsSpan = (info.outHeight - 1) * sh + 1;
  const colsSpan = (info.outWidth - 1) * sw + 1;
  initializers.push({ name: name('axes'), values: [1, 2] }, { name: name('steps'), values: [sh, sw] });
  const taps: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const tap = name(`tap${i}_${j}`);
      initializers.push(
        { name: `${tap}_starts`, values: [i * dh, j * dw] },
        { name: `${tap}_ends`, values: [i * dh + rowsSpan, j * dw + colsSpan] },
      );
      nodes.push({ op: 'Slice', inputs: [padded, `${tap}_starts`, `${tap}_ends`, name('axes'), name('steps')], outputs: [tap] });
      taps.push(tap);
    }
  }
  return { nodes, initializers, taps };
}

/** The im2col of the NHWC input `x` as ONNX nodes (names are prefixed by `prefix`). */
export function im2col(x: string, info: tf.backend_util.Conv2DInfo, prefix: string): Im2col {
  const { nodes, initializers, taps } = tapSlices(x, info, prefix);
  const name = (n: string): string => `${prefix}${n}`;
  let joined = taps[0]!;
  if (taps.length > 1) {
    nodes.push({ op: 'Concat', inputs: taps, outputs: [name('joined')], attrs: { axis: 3 } });
    joined = name('joined');
  }
  const { batchSize, outHeight, outWidth, inChannels, filterHeight: kh, filterWidth: kw } = info;
  initializers.push({ name: name('cols_shape'), values: [batchSize * outHeight * outWidth, kh * kw * inChannels] });
  nodes.push({ op: 'Reshape', inputs: [joined, name('cols_shape')], outputs: [name('cols')] });
  return { nodes, initializers, output: name('cols') };
}
