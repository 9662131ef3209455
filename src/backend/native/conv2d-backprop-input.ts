// Conv2DBackpropInput on native: the gradient of an NHWC conv with respect to its input (and so
// the forward pass of every conv2dTranspose). Three graphs, the fastest kept per shape:
// - conv-transpose: ONNX's ConvTranspose between Transposes to and from NCHW. The forward conv's
//   bottom and right padding become its pads, or, where the forward conv left the last rows
//   unread, output_padding (those rows of dx are zero);
// - phase-gemm: sub-pixel form. With forward stride s and top pad p, write h + p = q*s + r: then
//   dx[h] = sum_j dy[q - T + 1 + j] * w[(T-1-j)*s + r] over a window of T = ceil(k/s) rows of dy.
//   Every phase r (and column phase) is one more block of output channels of a single stride-1
//   GEMM over an im2col of dy, in NHWC; one Transpose interleaves the phases into dx's rows and
//   columns. The phase filter is gathered from the filter in the graph (a zero row where a phase
//   has fewer taps than the window);
// - phase-nchwc: the same phases as one stride-1 blocked-channel conv of dy (./nchwc.ts), where
//   the channels fit its blocks: no im2col, at the cost of the zero taps.
import * as tf from '@tensorflow/tfjs';
import { bottomPad, geometryKey, im2col, MAX_IM2COL_FLOATS, nhwcInfo, rightPad } from './conv-geometry.ts';
import type { OnnxInt64Initializer, OnnxNode } from './onnx-model.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import { nchwcConv, nchwcFits, type NchwcConvSpec } from './nchwc.ts';
import type { Candidate } from './sessions.ts';

/** One axis of the phase form: window T, phase rows Q (grid rows Q*s cover dx from the pad on). */
function phaseAxis(k: number, s: number, pad: number, size: number): { taps: number; count: number } {
  return { taps: Math.ceil(k / s), count: Math.ceil((size + pad) / s) };
}

/**
 * The phase-gemm graph (see the top of this file), or with `form` 'nchwc' the same phases as one
 * blocked-channel conv of dy (./nchwc.ts) instead of an im2col and a GEMM; undefined where the
 * im2col would be too large or the blocked conv does not fit.
 */
function phaseGraph(
  info: tf.backend_util.Conv2DInfo,
  dy: string,
  filter: string,
  dx: string,
  form: 'gemm' | 'nchwc',
): Candidate | undefined {
  const { batchSize, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const rows = phaseAxis(kh, sh, info.padInfo.top, info.inHeight);
  const cols = phaseAxis(kw, sw, info.padInfo.left, info.inWidth);
  const dyShape = [batchSize, info.outHeight, info.outWidth, co];
  const phaseFilterShape = [rows.taps, cols.taps, co, sh * sw * ci];
  // The stride-1 conv over dy, padded by taps - 1 before and as much after as makes `count` rows.
  const blocked: NchwcConvSpec = {
    xShape: dyShape,
    filterShape: phaseFilterShape,
    strides: [1, 1],
    dilations: [1, 1],
    pads: [rows.taps - 1, cols.taps - 1, rows.count - info.outHeight, cols.count - info.outWidth],
  };
  if (form === 'gemm' && batchSize * rows.count * cols.count * rows.taps * cols.taps * co > MAX_IM2COL_FLOATS) return undefined;
  if (form === 'nchwc' && (!nchwcFits(blocked) || blocked.pads.some((p) => p < 0))) return undefined;
  // The im2col of dy for a stride-1 window of rows.taps x cols.taps, padded by taps - 1 before.
  const window = {
    batchSize,
    inHeight: info.outHeight,
    inWidth: info.outWidth,
    inChannels: co,
    outHeight: rows.count,
    outWidth: cols.count,
    filterHeight: rows.taps,
    filterWidth: cols.taps,
    effectiveFilterHeight: rows.taps,
    effectiveFilterWidth: cols.taps,
    strideHeight: 1,
    strideWidth: 1,
    dilationHeight: 1,
    dilationWidth: 1,
    padInfo: { top: rows.taps - 1, left: cols.taps - 1, bottom: 0, right: 0, type: 'EXPLICIT' },
  } as unknown as tf.backend_util.Conv2DInfo;
  const patches = form === 'gemm' ? im2col(dy, window, 'dy_') : { nodes: [], initializers: [], output: '' };
  // Filter taps of window position (jh, jw) and phase (rh, rw); kh*kw names the zero row.
  const taps: number[] = [];
  for (let jh = 0; jh < rows.taps; jh++) {
    for (let jw = 0; jw < cols.taps; jw++) {
      for (let rh = 0; rh < sh; rh++) {
        for (let rw = 0; rw < sw; rw++) {
          const i = (rows.taps - 1 - jh) * sh + rh;
          const j = (cols.taps - 1 - jw) * sw + rw;
          taps.push(i < kh && j < kw ? i * kw + j : kh * kw);
        }
      }
    }
  }
  const initializers: OnnxInt64Initializer[] = [
    ...patches.initializers,
    { name: 'w_flat_shape', values: [kh * kw, ci * co] },
    { name: 'w_zero_row', values: [0, 0, 1, 0] },
    { name: 'w_taps', values: taps },
    { name: 'w_phases_shape', values: [rows.taps, cols.taps, sh, sw, ci, co] },
    { name: 'w_matrix_shape', values: [rows.taps * cols.taps * co, sh * sw * ci] },
    { name: 'dx_grid_shape', values: [batchSize, rows.count * sh, cols.count * sw, ci] },
  ];
  const nodes: OnnxNode[] = [
    { op: 'Reshape', inputs: [filter, 'w_flat_shape'], outputs: ['w_flat'] },
    { op: 'Pad', inputs: ['w_flat', 'w_zero_row'], outputs: ['w_padded'] },
    { op: 'Gather', inputs: ['w_padded', 'w_taps'], outputs: ['w_gathered'], attrs: { axis: 0 } },
    { op: 'Reshape', inputs: ['w_gathered', 'w_phases_shape'], outputs: ['w_phases'] },
    { op: 'Transpose', inputs: ['w_phases'], outputs: ['w_ordered'], attrs: { perm: [0, 1, 5, 2, 3, 4] } },
    { op: 'Reshape', inputs: ['w_ordered', 'w_matrix_shape'], outputs: ['w_matrix'] },
  ];
  if (form === 'gemm') {
    nodes.push(...patches.nodes, { op: 'MatMul', inputs: [patches.output, 'w_matrix'], outputs: ['phases'] });
  } else {
    // The matrix's rows are (jh, jw, co): an HWIO filter [T_h, T_w, Co, phases * Ci] once reshaped.
    initializers.push({ name: 'w_hwio_shape', values: phaseFilterShape });
    nodes.push({ op: 'Reshape', inputs: ['w_matrix', 'w_hwio_shape'], outputs: ['w_hwio'] });
    const conv = nchwcConv(blocked, dy, 'w_hwio', 'phases', 'nchwc_');
    initializers.push(...conv.initializers);
    nodes.push(...conv.nodes);
  }
  if (sh === 1 && sw === 1) {
    nodes.push({ op: 'Reshape', inputs: ['phases', 'dx_grid_shape'], outputs: ['dx_grid'] });
  } else {
    initializers.push({ name: 'grid_shape', values: [batchSize, rows.count, cols.count, sh, sw, ci] });
    nodes.push(
      { op: 'Reshape', inputs: ['phases', 'grid_shape'], outputs: ['grid'] },
      { op: 'Transpose', inputs: ['grid'], outputs: ['grid_interleaved'], attrs: { perm: [0, 1, 3, 2, 4, 5] } },
      { op: 'Reshape', inputs: ['grid_interleaved', 'dx_grid_shape'], outputs: ['dx_grid'] },
    );
  }
  const { top, left } = info.padInfo;
  const exact = top === 0 && left === 0 && rows.count * sh === info.inHeight && cols.count * sw === info.inWidth;
  if (exact) {
    nodes.push({ op: 'Identity', inputs: ['dx_grid'], outputs: [dx] });
  } else {
    initializers.push(
      { name: 'dx_starts', values: [top, left] },
      { name: 'dx_ends', values: [top + info.inHeight, left + info.inWidth] },
      { name: 'dx_axes', values: [1, 2] },
    );
    nodes.push({ op: 'Slice', inputs: ['dx_grid', 'dx_starts', 'dx_ends', 'dx_axes'], outputs: [dx] });
  }
  return {
    label: form === 'gemm' ? 'phase-gemm' : 'phase-nchwc',
    graph: {
      inputs: [
        { name: dy, shape: dyShape },
        { name: filter, shape: [kh, kw, ci, co] },
      ],
      outputs: [{ name: dx, shape: [batchSize, info.inHeight, info.inWidth, ci] }],
      nodes,
      initializers,
    },
  };
}

/** The graphs of dx from the NHWC `dy` and the HWIO `filter` of the forward conv `info`. */
export function backpropInputCandidates(info: tf.backend_util.Conv2DInfo, dy: string, filter: string, dx: string): Candidate[] {
  const bottom = bottomPad(info);
  const right = rightPad(info);
  const phases = [phaseGraph(info, dy, filter, dx, 'gemm'), phaseGraph(info, dy, filter, dx, 'nchwc')];
  return [
    ...phases.filter((c) => c !== undefined),
    {
      label: 'conv-transpose',
      graph: {
        inputs: [
          { name: dy, shape: [info.batchSize, info.outHeight, info.outWidth, info.outChannels] },
          { name: filter, shape: [info.filterHeight, info.filterWidth, info.inChannels, info.outChannels] },
        ],
        outputs: [{ name: dx, shape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels] }],
        nodes: [
          { op: 'Transpose', inputs: [dy], outputs: ['dy_nchw'], attrs: { perm: [0, 3, 1, 2] } },
          // ConvTranspose's weight is [C_in, C_out, kh, kw] with C_in the channels it reads (Co of the forward conv).
          { op: 'Transpose', inputs: [filter], outputs: ['w_iohw'], attrs: { perm: [3, 2, 0, 1] } },
          {
            op: 'ConvTranspose',
            inputs: ['dy_nchw', 'w_iohw'],
            outputs: ['dx_nchw'],
            attrs: {
              kernel_shape: [info.filterHeight, info.filterWidth],
              strides: [info.strideHeight, info.strideWidth],
              dilations: [info.dilationHeight, info.dilationWidth],
              pads: [info.padInfo.top, info.padInfo.left, Math.max(0, bottom), Math.max(0, right)],
              output_padding: [Math.max(0, -bottom), Math.max(0, -right)],
            },
          },
          { op: 'Transpose', inputs: ['dx_nchw'], outputs: [dx], attrs: { perm: [0, 2, 3, 1] } },
        ],
      },
    },
  ];
}

function plan(inputs: Record<string, tf.TensorInfo>, attrs: tf.Conv2DBackpropInputAttrs): NativePlan | undefined {
  const { filter } = inputs as { filter: tf.TensorInfo };
  const info = nhwcInfo(attrs.inputShape, filter.shape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, attrs.dataFormat);
  if (info === undefined) return undefined;
  return {
    key: geometryKey(info),
    outputShape: [info.batchSize, info.inHeight, info.inWidth, info.inChannels],
    candidates: (batchSize) => backpropInputCandidates({ ...info, batchSize }, 'dy', 'filter', 'dx'),
    batched: { inputs: ['dy'], output: 'images' },
  };
}

export const conv2dBackpropInputConfig = nativeKernel(tf.Conv2DBackpropInput, ['dy', 'filter'], plan);
