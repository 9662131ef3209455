// Conv2DBackpropFilter on native: the gradient of an NHWC conv with respect to its HWIO filter.
// Three graphs, the fastest kept per shape (sessions.ts):
// - im2col-gemm: the im2col of x ([B*OH*OW, kh*kw*Ci]) transposed times dy ([B*OH*OW, Co]) is
//   the filter gradient in HWIO order already: one GEMM over the batch and every output position;
// - tap-gemm: the same product a filter tap at a time, each tap's slice of x times dy, the taps'
//   rows then joined: no im2col buffer, which at full resolution costs more than the GEMMs;
// - conv: a convolution of x, read as Ci images of B channels, with dy, read as Co filters of B
//   channels whose taps lie `stride` apart (the forward stride becomes a dilation).
import { tf } from '../../util/tf.ts';
import { bottomPad, geometryKey, im2col, im2colSize, MAX_IM2COL_FLOATS, nhwcInfo, onnxPads, rightPad, tapSlices } from './conv-geometry.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import type { Candidate } from './sessions.ts';

export function backpropFilterCandidates(info: tf.backend_util.Conv2DInfo, x: string, dy: string, dw: string): Candidate[] {
  const { batchSize, outHeight, outWidth, outChannels, inChannels, filterHeight: kh, filterWidth: kw } = info;
  const io = {
    inputs: [
      { name: x, shape: [batchSize, info.inHeight, info.inWidth, inChannels] },
      { name: dy, shape: [batchSize, outHeight, outWidth, outChannels] },
    ],
    outputs: [{ name: dw, shape: [kh, kw, inChannels, outChannels] }],
  };
  const candidates: Candidate[] = [];
  if (im2colSize(info) <= MAX_IM2COL_FLOATS) {
    const cols = im2col(x, info, 'x_');
    candidates.push({
      label: 'im2col-gemm',
      graph: {
        ...io,
        // The output is declared as the Gemm's own [kh*kw*Ci, Co], so that it writes the caller's buffer.
        outputs: [{ name: dw, shape: [kh * kw * inChannels, outChannels] }],
        initializers: [...cols.initializers, { name: 'dy_shape', values: [batchSize * outHeight * outWidth, outChannels] }],
        nodes: [
          ...cols.nodes,
          { op: 'Reshape', inputs: [dy, 'dy_shape'], outputs: ['dy_matrix'] },
          { op: 'Gemm', inputs: [cols.output, 'dy_matrix'], outputs: [dw], attrs: { transA: 1 } },
        ],
      },
    });
  }
  if (kh * kw > 1) {
    const slices = tapSlices(x, info, 'x_');
    const positions = batchSize * outHeight * outWidth;
    const nodes = [...slices.nodes, { op: 'Reshape', inputs: [dy, 'dy_shape'], outputs: ['dy_matrix'] }];
    const tapGrads = slices.taps.map((tap) => {
      nodes.push(
        { op: 'Reshape', inputs: [tap, 'tap_shape'], outputs: [`${tap}_matrix`] },
        { op: 'Gemm', inputs: [`${tap}_matrix`, 'dy_matrix'], outputs: [`${tap}_dw`], attrs: { transA: 1 } },
      );
      return `${tap}_dw`;
    });
    nodes.push({ op: 'Concat', inputs: tapGrads, outputs: [dw], attrs: { axis: 0 } });
    candidates.push({
      label: 'tap-gemm',
      graph: {
        ...io,
        outputs: [{ name: dw, shape: [kh * kw * inChannels, outChannels] }],
        initializers: [
          ...slices.initializers,
          { name: 'dy_shape', values: [positions, outChannels] },
          { name: 'tap_shape', values: [positions, inChannels] },
        ],
        nodes,
      },
    });
  }
  // The conv form reads exactly kh x kw taps only where the forward conv reads every row and column.
  if (bottomPad(info) >= 0 && rightPad(info) >= 0) {
    candidates.push({
      label: 'conv',
      graph: {
        ...io,
        nodes: [
          { op: 'Transpose', inputs: [x], outputs: ['x_cbhw'], attrs: { perm: [3, 0, 1, 2] } },
          { op: 'Transpose', inputs: [dy], outputs: ['dy_cbhw'], attrs: { perm: [3, 0, 1, 2] } },
          {
            op: 'Conv',
            inputs: ['x_cbhw', 'dy_cbhw'],
            outputs: ['dw_iohw'],
            attrs: {
              kernel_shape: [outHeight, outWidth],
              strides: [info.dilationHeight, info.dilationWidth],
              dilations: [info.strideHeight, info.strideWidth],
              pads: onnxPads(info),
            },
          },
          { op: 'Transpose', inputs: ['dw_iohw'], outputs: [dw], attrs: { perm: [2, 3, 0, 1] } },
        ],
      },
    });
  }
  return candidates;
}

function plan(inputs: Record<string, tf.TensorInfo>, attrs: tf.Conv2DBackpropFilterAttrs): NativePlan | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  const info = nhwcInfo(x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, attrs.dataFormat);
  if (info === undefined) return undefined;
  if (im2colSize(info) > MAX_IM2COL_FLOATS && (bottomPad(info) < 0 || rightPad(info) < 0)) return undefined;
  return {
    key: geometryKey(info),
    outputShape: [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels],
    candidates: (batchSize) => backpropFilterCandidates({ ...info, batchSize }, 'x', 'dy', 'dw'),
    batched: { inputs: ['x', 'dy'], output: 'sum' },
  };
}

export const conv2dBackpropFilterConfig = nativeKernel(tf.Conv2DBackpropFilter, ['x', 'dy'], plan);
