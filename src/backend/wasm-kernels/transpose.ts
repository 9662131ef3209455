// Transpose on wasm for every permutation that is, once size-1 axes are dropped and axes that stay
// neighbours are merged, a swap of two axes: [rows, cols] -> [cols, rows], with an optional
// leading batch axis and an optional trailing block of floats that moves as a whole (NHWC
// [B, H, W, C] -> [H, W, B, C] is [B, H*W] swapped in blocks of C). These run the SIMD module's
// transpose (4x4 shuffled blocks) or transpose_blocks (whole runs); TF.js's stock kernel, kept for
// every other permutation and dtype, moves one element at a time (bench:kernels' Transpose cases).
import { tf } from '../../util/tf.ts';
import { simdKernels, wasmHeapOffset, type WasmKernelBackend } from '../simd/module.ts';
import { overrideStockKernel } from './stock-fallback.ts';

/** A transpose as batch x [rows, cols] x block -> batch x [cols, rows] x block. */
export interface AxisSwap {
  batch: number;
  rows: number;
  cols: number;
  block: number;
}

/** `perm` on `shape` as an AxisSwap, or undefined when it is another kind of permutation (or none). */
export function axisSwap(shape: readonly number[], perm: readonly number[]): AxisSwap | undefined {
  // Input axes of size > 1, renumbered in input order; then runs of output axes that are
  // consecutive in the input merge into one axis.
  const kept = shape.map((size, axis) => (size === 1 ? -1 : axis)).filter((axis) => axis >= 0);
  const rank = new Map(kept.map((axis, i) => [axis, i]));
  const runs: number[][] = [];
  for (const axis of perm) {
    const r = rank.get(axis);
    if (r === undefined) continue;
    const last = runs[runs.length - 1];
    if (last !== undefined && last[last.length - 1] + 1 === r) last.push(r);
    else runs.push([r]);
  }
  const size = (run: number[]): number => run.reduce((p, r) => p * shape[kept[r]], 1);
  // order: for each output run, its place among the runs in input order
  const byInput = [...runs].sort((a, b) => a[0] - b[0]);
  const order = runs.map((run) => byInput.indexOf(run)).join(',');
  const sizes = byInput.map(size);
  switch (order) {
    case '1,0':
      return { batch: 1, rows: sizes[0], cols: sizes[1], block: 1 };
    case '0,2,1':
      return { batch: sizes[0], rows: sizes[1], cols: sizes[2], block: 1 };
    case '1,0,2':
      return { batch: 1, rows: sizes[0], cols: sizes[1], block: sizes[2] };
    case '0,2,1,3':
      return { batch: sizes[0], rows: sizes[1], cols: sizes[2], block: sizes[3] };
    default:
      return undefined;
  }
}

/**
 * Below this many elements per swapped slice the stock kernel is as fast: the call overhead per
 * slice dominates (a [192, 64, 64] batch of 64 x 64 swaps, the Transpose case of `npm run bench:kernels`).
 */
const MIN_SLICE_ELEMENTS = 65536;

export const transposeConfig = overrideStockKernel(tf.Transpose, (args) => {
  const x = args.inputs['x'];
  const { perm } = args.attrs as unknown as tf.TransposeAttrs;
  const kernels = simdKernels();
  const swap = x !== undefined && (x.dtype === 'float32' || x.dtype === 'int32') ? axisSwap(x.shape, perm) : undefined;
  if (x === undefined || kernels === undefined || swap === undefined || swap.rows * swap.cols * swap.block < MIN_SLICE_ELEMENTS) {
    return undefined;
  }
  const y = (args.backend as unknown as WasmKernelBackend).makeOutput(
    perm.map((axis) => x.shape[axis]),
    x.dtype,
  );
  const { batch, rows, cols, block } = swap;
  const sliceBytes = rows * cols * block * 4;
  const [from, to] = [wasmHeapOffset(x), wasmHeapOffset(y)];
  for (let b = 0; b < batch; b++) {
    if (block === 1) kernels.transpose(from + b * sliceBytes, to + b * sliceBytes, rows, cols);
    else kernels.transpose_blocks(from + b * sliceBytes, to + b * sliceBytes, rows, cols, block);
  }
  return y;
});
