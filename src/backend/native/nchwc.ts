// onnxruntime's blocked-channel convolution (NCHWc: channels in blocks of the CPU's vector width,
// innermost). Its graph optimizer rewrites a Conv into this form only when the filter is a
// constant, and the kernels' filters change every step, so the graphs here write the form out:
// ReorderInput reads the NHWC input straight into blocks, the filter is reordered by a
// Reshape/Transpose (it is small), and ReorderOutput writes NHWC again. There are no NCHW
// transposes of the activations and no im2col: MLAS convolves the blocks directly.
//
// The ops are internal to onnxruntime (domain com.microsoft.nchwc); the block size is the one
// MLAS picked for this CPU, read once from what ReorderInput makes of four channels (the fewest it
// takes; it pads them to one block). Where that is no more than four (no such kernels on this CPU)
// or the ops are missing, no graph here is offered.
import { loadBinding, type OrtSession } from './binding.ts';
import type { OnnxGraph, OnnxInt64Initializer, OnnxNode } from './onnx-model.ts';
import { openSession } from './sessions.ts';

const DOMAIN = 'com.microsoft.nchwc';

let blockSize: number | undefined;

/** Channels per block of onnxruntime's NCHWc kernels on this CPU; 1 where it has none. */
export function nchwcBlockSize(): number {
  if (blockSize === undefined) blockSize = probeBlockSize();
  return blockSize;
}

const PROBE_CHANNELS = 4;

function probeBlockSize(): number {
  const graph: OnnxGraph = {
    inputs: [{ name: 'x', shape: [1, PROBE_CHANNELS, 1, 1] }],
    outputs: [{ name: 'y', shape: [1, -1, 1, 1] }],
    nodes: [{ op: 'ReorderInput', domain: DOMAIN, inputs: ['x'], outputs: ['y'] }],
  };
  const binding = loadBinding();
  let session: OrtSession;
  try {
    session = openSession(graph, { intraOpNumThreads: 1 });
  } catch {
    return 1;
  }
  try {
    const { y } = session.run({ x: binding.tensor(new Float32Array(PROBE_CHANNELS), [1, PROBE_CHANNELS, 1, 1]) }, { y: null }, {});
    const channels = y?.dims[1];
    return typeof channels === 'number' && Number.isInteger(channels) && channels > PROBE_CHANNELS ? channels : 1;
  } catch {
    return 1;
  } finally {
    session.dispose();
  }
}

/** An NHWC convolution, stride and dilation per axis, explicit ONNX pads [top, left, bottom, right]. */
export interface NchwcConvSpec {
  /** [batch, height, width, channels] of the input. */
  xShape: readonly number[];
  /** [kh, kw, in channels, out channels] of the filter (HWIO). */
  filterShape: readonly number[];
  strides: readonly [number, number];
  dilations: readonly [number, number];
  pads: readonly number[];
}

/** Whether nchwcConv can take `spec`: channels in whole blocks (the input's may be fewer than one block). */
export function nchwcFits(spec: NchwcConvSpec): boolean {
  const block = nchwcBlockSize();
  const [, , ci, co] = spec.filterShape as [number, number, number, number];
  return block > 1 && co % block === 0 && (ci % block === 0 || ci < block);
}

/** The node that reads the NHWC tensor `x` of `channels` channels into `output`, in the form nchwcConvBlocks takes. */
export function nchwcInput(x: string, channels: number, output: string): OnnxNode {
  // Whole blocks are read straight into blocks; fewer channels than a block, the kernel reads as plain NCHW.
  return channels % nchwcBlockSize() === 0
    ? { op: 'ReorderInput', domain: DOMAIN, inputs: [x], outputs: [output], attrs: { channels_last: 1 } }
    : { op: 'Transpose', inputs: [x], outputs: [output], attrs: { perm: [0, 3, 1, 2] } };
}

/**
 * Nodes (names prefixed by `prefix`) that convolve `input` (made by nchwcInput from the spec's
 * input) with the HWIO tensor `filter` into `yBlocks`: the output channels in blocks, which a
 * Concat along axis 1 may join (the blocks of one image lie together) before nchwcOutput.
 */
export function nchwcConvBlocks(
  spec: NchwcConvSpec,
  input: string,
  filter: string,
  yBlocks: string,
  prefix: string,
): { nodes: OnnxNode[]; initializers: OnnxInt64Initializer[] } {
  const block = nchwcBlockSize();
  const [kh, kw, ci, co] = spec.filterShape as [number, number, number, number];
  const name = (n: string): string => `${prefix}${n}`;
  const blockedInput = ci % block === 0;
  // Filter blocks [Co/b, Ci/b, kh, kw, b in, b out], or [Co/b, Ci, kh, kw, b out] for an input read as NCHW.
  const split = blockedInput ? [kh, kw, ci / block, block, co / block, block] : [kh, kw, ci, co / block, block];
  const perm = blockedInput ? [4, 2, 0, 1, 3, 5] : [3, 2, 0, 1, 4];
  return {
    initializers: [
      { name: name('w_split'), values: split },
      { name: name('w_shape'), values: [co, ci, kh, kw] },
    ],
    nodes: [
      { op: 'Reshape', inputs: [filter, name('w_split')], outputs: [name('w_split_dims')] },
      { op: 'Transpose', inputs: [name('w_split_dims')], outputs: [name('w_blocks')], attrs: { perm } },
      { op: 'Reshape', inputs: [name('w_blocks'), name('w_shape')], outputs: [name('w')] },
      {
        op: 'Conv',
        domain: DOMAIN,
        inputs: [input, name('w')],
        outputs: [yBlocks],
        attrs: { kernel_shape: [kh, kw], strides: [...spec.strides], dilations: [...spec.dilations], pads: [...spec.pads] },
      },
    ],
  };
}

/** The node that writes `yBlocks` (`channels` channels in blocks) as the NHWC tensor `y`. */
export function nchwcOutput(yBlocks: string, channels: number, y: string): OnnxNode {
  return { op: 'ReorderOutput', domain: DOMAIN, inputs: [yBlocks], outputs: [y], attrs: { channels, channels_last: 1 } };
}

/**
 * Nodes (names prefixed by `prefix`) that convolve the NHWC tensor `x` with the HWIO tensor
 * `filter` into the NHWC tensor `y`, for a spec that nchwcFits.
 */
export function nchwcConv(
  spec: NchwcConvSpec,
  x: string,
  filter: string,
  y: string,
  prefix: string,
): { nodes: OnnxNode[]; initializers: OnnxInt64Initializer[] } {
  const [, , ci, co] = spec.filterShape as [number, number, number, number];
  const conv = nchwcConvBlocks(spec, `${prefix}x_blocks`, filter, `${prefix}y_blocks`, prefix);
  return {
    initializers: conv.initializers,
    nodes: [nchwcInput(x, ci, `${prefix}x_blocks`), ...conv.nodes, nchwcOutput(`${prefix}y_blocks`, co, y)],
  };
}
