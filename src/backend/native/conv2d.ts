// Conv2D on native: the NHWC forward convolution as one onnxruntime graph, either ONNX's Conv
// (NCHW, so between Transposes of the input, filter and output), onnxruntime's blocked-channel
// Conv (./nchwc.ts) or an im2col and one MatMul, which needs no transposes (the HWIO filter is
// already the GEMM's [kh*kw*Ci, Co] matrix). The fastest for each shape is kept (sessions.ts).
import { tf } from '../../util/tf.ts';
import { geometryKey, im2col, im2colSize, MAX_IM2COL_FLOATS, nhwcInfo, onnxPads } from './conv-geometry.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import { nchwcConv, nchwcFits, type NchwcConvSpec } from './nchwc.ts';
import type { Candidate } from './sessions.ts';

/** The graphs of an NHWC conv of `x` with the HWIO `filter` into `y`. */
export function conv2dCandidates(info: tf.backend_util.Conv2DInfo, x: string, filter: string, y: string): Candidate[] {
  const xShape = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const filterShape = [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels];
  const yShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
  const io = {
    inputs: [
      { name: x, shape: xShape },
      { name: filter, shape: filterShape },
    ],
    outputs: [{ name: y, shape: yShape }],
  };
  const candidates: Candidate[] = [
    {
      label: 'conv',
      graph: {
        ...io,
        nodes: [
          { op: 'Transpose', inputs: [x], outputs: ['x_nchw'], attrs: { perm: [0, 3, 1, 2] } },
          { op: 'Transpose', inputs: [filter], outputs: ['w_oihw'], attrs: { perm: [3, 2, 0, 1] } },
          {
            op: 'Conv',
            inputs: ['x_nchw', 'w_oihw'],
            outputs: ['y_nchw'],
            attrs: {
              kernel_shape: [info.filterHeight, info.filterWidth],
              strides: [info.strideHeight, info.strideWidth],
              dilations: [info.dilationHeight, info.dilationWidth],
              pads: onnxPads(info),
            },
          },
          { op: 'Transpose', inputs: ['y_nchw'], outputs: [y], attrs: { perm: [0, 2, 3, 1] } },
        ],
      },
    },
  ];
  const spec: NchwcConvSpec = {
    xShape,
    filterShape,
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: onnxPads(info),
  };
  if (nchwcFits(spec)) {
    const blocked = nchwcConv(spec, x, filter, y, 'nchwc_');
    candidates.push({ label: 'nchwc', graph: { ...io, ...blocked } });
  }
  if (im2colSize(info) <= MAX_IM2COL_FLOATS) {
    const cols = im2col(x, info, 'x_');
    candidates.push({
      label: 'im2col-matmul',
      graph: {
        ...io,
        // The output is declared as the MatMul's own [B*OH*OW, Co], so that it writes the caller's buffer.
        outputs: [{ name: y, shape: [info.batchSize * info.outHeight * info.outWidth, info.outChannels] }],
        initializers: [
          ...cols.initializers,
          { name: 'w_shape', values: [info.filterHeight * info.filterWidth * info.inChannels, info.outChannels] },
        ],
        nodes: [
          ...cols.nodes,
          { op: 'Reshape', inputs: [filter, 'w_shape'], outputs: ['w_matrix'] },
          { op: 'MatMul', inputs: [cols.output, 'w_matrix'], outputs: [y] },
        ],
      },
    });
  }
  return candidates;
}

function plan(inputs: Record<string, tf.TensorInfo>, attrs: tf.Conv2DAttrs): NativePlan | undefined {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const info = nhwcInfo(x.shape, filter.shape, attrs.strides, attrs.dilations, attrs.pad, attrs.dimRoundingMode, attrs.dataFormat);
  // One channel in and out: SSIM's separable blur, which the wasm kernel runs as a banded product.
  if (info === undefined || (info.inChannels === 1 && info.outChannels === 1)) return undefined;
  return {
    key: geometryKey(info),
    outputShape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
    candidates: (batchSize) => conv2dCandidates({ ...info, batchSize }, 'x', 'filter', 'y'),
    batched: { inputs: ['x'], output: 'images' },
  };
}

export const conv2dConfig = nativeKernel(tf.Conv2D, ['x', 'filter'], plan);
