// Conv2DBackpropInput on native: the gradient of an NHWC conv with respect to its input (and so
// the forward pass of every conv2dTranspose). Four graphs, the fastest kept per shape:
// - conv-transpose: ONNX's ConvTranspose between Transposes to and from NCHW. The forward conv's
//   bottom and right padding become its pads, or, where the forward conv left the last rows
//   unread, output_padding (those rows of dx are zero);
// - phase-gemm: sub-pixel form. With forward stride s and top pad p, write h + p = q*s + r: then
//   dx[h] = sum_j dy[q - T + 1 + j] * w[(T-1-j)*s + r] over a window of T = ceil(k/s) rows of dy.
//   Every phase r (and column phase) is one more block of output channels of a single stride-1
//   GEMM over an im2col of dy; one Transpose interleaves the phases into dx's rows and columns.
//   The phase filter is gathered from the filter in the graph (a zero row where a phase has fewer
//   taps than the window). Whole strides of the top pad move the window down dy instead;
// - phase-nchwc: the same phases as one stride-1 blocked-channel conv of dy (./nchwc.ts), where
//   the channels fit its blocks: no im2col, at the cost of the zero taps;
// - phase-split: each phase its own blocked conv with only its real taps (9 of 16 for a 3x3
//   filter at stride 2), the phases joined in blocks.
// The blocked forms' Transpose reads the blocks straight into dx's order, and the last node of
// every graph writes the caller's buffer: the graph's output is declared in that node's own shape.
import { tf } from '../../util/tf.ts';
import { bottomPad, geometryKey, im2col, MAX_IM2COL_FLOATS, nhwcInfo, rightPad } from './conv-geometry.ts';
import type { OnnxInt64Initializer, OnnxNode } from './onnx-model.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import { nchwcBlockSize, nchwcConvBlocks, nchwcFits, nchwcInput, nchwcOutput, type NchwcConvSpec } from './nchwc.ts';
import type { Candidate } from './sessions.ts';

/** One axis of the phase form. */
interface PhaseAxis {
  /** The forward stride: the phases along this axis. */
  stride: number;
  /** The window T = ceil(k / s) of dy rows. */
  taps: number;
  /** Rows the window moves down dy: the whole strides of the top pad, which need no computing. */
  shift: number;
  /** What is left of the top pad: grid rows above dx's first row. */
  lead: number;
  /** Phase rows: the grid's count * s rows cover dx from `lead` rows above it. */
  count: number;
  /** dy's rows. */
  dySize: number;
}

function phaseAxis(k: number, s: number, pad: number, size: number, dySize: number): PhaseAxis {
  const shift = Math.floor(pad / s);
  const lead = pad - shift * s;
  return { stride: s, taps: Math.ceil(k / s), shift, lead, count: Math.ceil((size + lead) / s), dySize };
}

/** The pads, before and after, of a stride-1 conv over dy with `taps` taps of this axis. */
function phasePads(axis: PhaseAxis, taps: number): [number, number] {
  return [taps - 1 - axis.shift, axis.count + axis.shift - axis.dySize];
}

/** Whether the phase grid is dx itself: no pad left above it and no rows or columns past it. */
function gridIsDx(info: tf.backend_util.Conv2DInfo, rows: PhaseAxis, cols: PhaseAxis): boolean {
  return rows.lead === 0 && cols.lead === 0 && rows.count * rows.stride === info.inHeight && cols.count * cols.stride === info.inWidth;
}

/** The name of the phase grid: dx itself, or what a Slice then cuts dx from. */
function gridName(info: tf.backend_util.Conv2DInfo, rows: PhaseAxis, cols: PhaseAxis, dx: string): string {
  return gridIsDx(info, rows, cols) ? dx : 'grid';
}

/**
 * The phases of every grid position in its channels (row phase major), as one graph's nodes left
 * them: in onnxruntime's NCHWc blocks ([B, sh*sw*ci, Q_h, Q_w]), or channels last with `dims`
 * (a single phase channels last is the grid already, named by gridName).
 */
type Phases = { name: string; layout: 'blocks' } | ChannelsLastPhases;

interface ChannelsLastPhases {
  name: string;
  layout: 'channels-last';
  dims: readonly number[];
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
  const rows = phaseAxis(kh, sh, info.padInfo.top, info.inHeight, info.outHeight);
  const cols = phaseAxis(kw, sw, info.padInfo.left, info.inWidth, info.outWidth);
  const [top, bottom] = phasePads(rows, rows.taps);
  const [left, right] = phasePads(cols, cols.taps);
  const dyShape = [batchSize, info.outHeight, info.outWidth, co];
  const phaseFilterShape = [rows.taps, cols.taps, co, sh * sw * ci];
  // The stride-1 conv over dy whose output channels are the phases.
  const blocked: NchwcConvSpec = {
    xShape: dyShape,
    filterShape: phaseFilterShape,
    strides: [1, 1],
    dilations: [1, 1],
    pads: [top, left, bottom, right],
  };
  if (top < 0 || left < 0) return undefined;
  if (form === 'gemm' && batchSize * rows.count * cols.count * rows.taps * cols.taps * co > MAX_IM2COL_FLOATS) return undefined;
  if (form === 'nchwc' && (!nchwcFits(blocked) || bottom < 0 || right < 0)) return undefined;
  // The im2col of dy for that stride-1 window (the bottom and right pads follow from its size).
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
    padInfo: { top, left, bottom: 0, right: 0, type: 'EXPLICIT' },
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
  ];
  const nodes: OnnxNode[] = [
    { op: 'Reshape', inputs: [filter, 'w_flat_shape'], outputs: ['w_flat'] },
    { op: 'Pad', inputs: ['w_flat', 'w_zero_row'], outputs: ['w_padded'] },
    { op: 'Gather', inputs: ['w_padded', 'w_taps'], outputs: ['w_gathered'], attrs: { axis: 0 } },
    { op: 'Reshape', inputs: ['w_gathered', 'w_phases_shape'], outputs: ['w_phases'] },
    { op: 'Transpose', inputs: ['w_phases'], outputs: ['w_ordered'], attrs: { perm: [0, 1, 5, 2, 3, 4] } },
    { op: 'Reshape', inputs: ['w_ordered', 'w_matrix_shape'], outputs: ['w_matrix'] },
  ];
  let phases: Phases;
  if (form === 'gemm') {
    // A single phase is the grid itself: the MatMul writes it.
    const name = sh * sw === 1 ? gridName(info, rows, cols, dx) : 'phases';
    nodes.push(...patches.nodes, { op: 'MatMul', inputs: [patches.output, 'w_matrix'], outputs: [name] });
    phases = { name, layout: 'channels-last', dims: [batchSize * rows.count * cols.count, sh * sw * ci] };
  } else {
    // The matrix's rows are (jh, jw, co): an HWIO filter [T_h, T_w, Co, phases * Ci] once reshaped.
    initializers.push({ name: 'w_hwio_shape', values: phaseFilterShape });
    nodes.push({ op: 'Reshape', inputs: ['w_matrix', 'w_hwio_shape'], outputs: ['w_hwio'] }, nchwcInput(dy, co, 'dy_blocks'));
    const conv = nchwcConvBlocks(blocked, 'dy_blocks', 'w_hwio', 'phases', 'nchwc_');
    initializers.push(...conv.initializers);
    nodes.push(...conv.nodes);
    phases = { name: 'phases', layout: 'blocks' };
  }
  return phaseCandidate(form === 'gemm' ? 'phase-gemm' : 'phase-nchwc', info, rows, cols, phases, dy, filter, dx, nodes, initializers);
}

/**
 * The phase-split graph: each phase its own stride-1 blocked conv of dy (./nchwc.ts) with only its
 * real taps, the phases joined in blocks; undefined where a phase has no tap, there is a single
 * phase (phase-nchwc is the same graph) or a blocked conv does not fit.
 */
function phaseSplitGraph(info: tf.backend_util.Conv2DInfo, dy: string, filter: string, dx: string): Candidate | undefined {
  const { batchSize, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  if ((sh === 1 && sw === 1) || kh < sh || kw < sw) return undefined;
  const rows = phaseAxis(kh, sh, info.padInfo.top, info.inHeight, info.outHeight);
  const cols = phaseAxis(kw, sw, info.padInfo.left, info.inWidth, info.outWidth);
  const dyShape = [batchSize, info.outHeight, info.outWidth, co];
  const nodes: OnnxNode[] = [nchwcInput(dy, co, 'dy_blocks')];
  const initializers: OnnxInt64Initializer[] = [];
  const phaseBlocks: string[] = [];
  for (let rh = 0; rh < sh; rh++) {
    for (let rw = 0; rw < sw; rw++) {
      // Phase (rh, rw) reads filter rows rh, rh + s, ... (the last first, as the window runs down dy).
      const rowTaps = Math.ceil((kh - rh) / sh);
      const colTaps = Math.ceil((kw - rw) / sw);
      const [top, bottom] = phasePads(rows, rowTaps);
      const [left, right] = phasePads(cols, colTaps);
      const spec: NchwcConvSpec = {
        xShape: dyShape,
        filterShape: [rowTaps, colTaps, co, ci],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [top, left, bottom, right],
      };
      if (!nchwcFits(spec) || spec.pads.some((p) => p < 0)) return undefined;
      const name = (n: string): string => `phase${rh}_${rw}_${n}`;
      initializers.push(
        { name: name('rows'), values: Array.from({ length: rowTaps }, (_, j) => (rowTaps - 1 - j) * sh + rh) },
        { name: name('cols'), values: Array.from({ length: colTaps }, (_, j) => (colTaps - 1 - j) * sw + rw) },
      );
      nodes.push(
        { op: 'Gather', inputs: [filter, name('rows')], outputs: [name('w_rows')], attrs: { axis: 0 } },
        { op: 'Gather', inputs: [name('w_rows'), name('cols')], outputs: [name('w_taps')], attrs: { axis: 1 } },
        // The forward filter's [in, out] channels are this conv's [out, in].
        { op: 'Transpose', inputs: [name('w_taps')], outputs: [name('w_hwio')], attrs: { perm: [0, 1, 3, 2] } },
      );
      const conv = nchwcConvBlocks(spec, 'dy_blocks', name('w_hwio'), name('blocks'), name(''));
      initializers.push(...conv.initializers);
      nodes.push(...conv.nodes);
      phaseBlocks.push(name('blocks'));
    }
  }
  nodes.push({ op: 'Concat', inputs: phaseBlocks, outputs: ['phases'], attrs: { axis: 1 } });
  return phaseCandidate('phase-split', info, rows, cols, { name: 'phases', layout: 'blocks' }, dy, filter, dx, nodes, initializers);
}

/**
 * The candidate whose `nodes` compute `phases`, and then write them into dx's rows and columns.
 * The graph's output is declared in the shape of its last node's output, which holds dx's values
 * in dx's order, so that node writes the caller's buffer (a Reshape there would copy).
 */
function phaseCandidate(
  label: string,
  info: tf.backend_util.Conv2DInfo,
  rows: PhaseAxis,
  cols: PhaseAxis,
  phases: Phases,
  dy: string,
  filter: string,
  dx: string,
  nodes: OnnxNode[],
  initializers: OnnxInt64Initializer[],
): Candidate {
  const { batchSize, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const exact = gridIsDx(info, rows, cols);
  // The grid covers dx and the rows and columns around it that a Slice then drops.
  const grid = gridName(info, rows, cols, dx);
  const block = nchwcBlockSize();
  let gridDims: number[];
  if (phases.layout === 'blocks' && sh * sw > 1 && ci % block === 0) {
    // The channels are [sh, sw, ci / b] blocks of b values: one Transpose reads them in dx's order.
    initializers.push({ name: 'phase_blocks_shape', values: [batchSize, sh, sw, ci / block, rows.count, cols.count, block] });
    nodes.push(
      { op: 'Reshape', inputs: [phases.name, 'phase_blocks_shape'], outputs: ['phase_blocks'] },
      { op: 'Transpose', inputs: ['phase_blocks'], outputs: [grid], attrs: { perm: [0, 4, 1, 5, 2, 3, 6] } },
    );
    gridDims = [batchSize, rows.count, sh, cols.count, sw, ci / block, block];
  } else {
    let channelsLast: ChannelsLastPhases;
    if (phases.layout === 'blocks') {
      const name = sh * sw === 1 ? grid : 'phases_nhwc';
      nodes.push(nchwcOutput(phases.name, sh * sw * ci, name));
      channelsLast = { name, layout: 'channels-last', dims: [batchSize, rows.count, cols.count, sh * sw * ci] };
    } else {
      channelsLast = phases;
    }
    if (sh * sw === 1) {
      // One phase is the grid, written by the node that made it.
      gridDims = [...channelsLast.dims];
    } else {
      initializers.push({ name: 'phases_split_shape', values: [batchSize, rows.count, cols.count, sh, sw, ci] });
      nodes.push(
        { op: 'Reshape', inputs: [channelsLast.name, 'phases_split_shape'], outputs: ['phases_split'] },
        { op: 'Transpose', inputs: ['phases_split'], outputs: [grid], attrs: { perm: [0, 1, 3, 2, 4, 5] } },
      );
      gridDims = [batchSize, rows.count, sh, cols.count, sw, ci];
    }
  }
  let outputDims = gridDims;
  if (!exact) {
    initializers.push(
      { name: 'grid_shape', values: [batchSize, rows.count * sh, cols.count * sw, ci] },
      { name: 'dx_starts', values: [rows.lead, cols.lead] },
      { name: 'dx_ends', values: [rows.lead + info.inHeight, cols.lead + info.inWidth] },
      { name: 'dx_axes', values: [1, 2] },
    );
    nodes.push(
      { op: 'Reshape', inputs: [grid, 'grid_shape'], outputs: ['grid_nhwc'] },
      { op: 'Slice', inputs: ['grid_nhwc', 'dx_starts', 'dx_ends', 'dx_axes'], outputs: [dx] },
    );
    outputDims = [batchSize, info.inHeight, info.inWidth, ci];
  }
  return {
    label,
    graph: {
      inputs: [
        { name: dy, shape: [batchSize, info.outHeight, info.outWidth, co] },
        { name: filter, shape: [kh, kw, ci, co] },
      ],
      outputs: [{ name: dx, shape: outputDims }],
      nodes,
      initializers,
    },
  };
}

/** The graphs of dx from the NHWC `dy` and the HWIO `filter` of the forward conv `info`. */
export function backpropInputCandidates(info: tf.backend_util.Conv2DInfo, dy: string, filter: string, dx: string): Candidate[] {
  const bottom = bottomPad(info);
  const right = rightPad(info);
  const phases = [
    phaseGraph(info, dy, filter, dx, 'gemm'),
    phaseGraph(info, dy, filter, dx, 'nchwc'),
    phaseSplitGraph(info, dy, filter, dx),
  ];
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
