// Sum on wasm over a contiguous block of axes that leaves channels after it (every conv bias
// gradient: axes 0..2 of NHWC). TF.js's wasm Sum first transposes the reduced axes innermost, a
// generic per-element loop; here the block becomes the width of one
// XNNPACK average pool, [outer, 1, N, C] pooled over [1, N], times N, or, when only leading
// axes are reduced and C is whole vectors, the SIMD module's column sum. (XNNPACK's pool over the
// [8, 32768] bias gradient of a 256x256 decoder's first Dense layer left the wasm heap corrupt: the
// micro-batch-8 trap.) Other cases (int32, trailing axes, which need no transpose) run the stock kernel.
import { tf } from '../../util/tf.ts';
import { simdKernels } from '../simd/module.ts';
import { overridingWasmKernel } from './compose.ts';
import { CHANNEL_SUM } from './kernel-names.ts';

interface ReducedBlock {
  /** product of the axes before the reduced block */
  outer: number;
  /** product of the reduced axes */
  reduced: number;
  /** product of the axes after the reduced block */
  inner: number;
}

/** The reduction as [outer, reduced, inner] when the reduced axes are contiguous and not the last. */
function reducedBlock(shape: readonly number[], axis: number | number[]): ReducedBlock | undefined {
  const axes = [...new Set(tf.util.parseAxisParam(axis, [...shape]))].sort((a, b) => a - b);
  if (axes.length === 0) return undefined;
  const first = axes[0];
  const last = axes[axes.length - 1];
  if (last - first + 1 !== axes.length || last === shape.length - 1) return undefined;
  const product = (from: number, to: number): number => shape.slice(from, to).reduce((a, b) => a * b, 1);
  return { outer: product(0, first), reduced: product(first, last + 1), inner: product(last + 1, shape.length) };
}

/**
 * Most channels the average pool is given: XNNPACK's pool over 8+ elements with 16384 channels
 * traps ("memory access out of bounds", from 8 x 16384 up; 8 x 8192 and 7 x 32768 run), and it
 * leaves the module's heap corrupt. Wider reductions that the SIMD column sum cannot take run the
 * stock kernel.
 */
const MAX_POOL_CHANNELS = 8192;

/** The reduction of leading axes only, over channels in whole vectors: the SIMD column sum takes it. */
function takesColumnSum({ outer, inner }: ReducedBlock): boolean {
  return outer === 1 && inner % 4 === 0 && simdKernels() !== undefined;
}

export const sumConfig = overridingWasmKernel(
  tf.Sum,
  ['x'],
  ({ x }, { axis }: tf.SumAttrs) => {
    if (x.dtype !== 'float32') return false;
    const block = reducedBlock(x.shape, axis);
    if (block === undefined || block.reduced <= 1 || block.outer * block.inner === 0) return false;
    return takesColumnSum(block) || block.inner <= MAX_POOL_CHANNELS;
  },
  ({ x }, { axis, keepDims }: tf.SumAttrs) => {
    const block = reducedBlock(x.shape, axis);
    if (block === undefined) throw new Error('Sum on wasm: reduced axes changed between check and run');
    const { outer, reduced, inner } = block;
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const outShape = x.shape.flatMap((size, i) => (axes.includes(i) ? (keepDims ? [1] : []) : [size]));
    if (takesColumnSum(block)) {
      return tf.reshape(tf.engine().runKernel(CHANNEL_SUM, { x: tf.reshape(x, [reduced, inner]) }) as tf.Tensor, outShape);
    }
    const rows = tf.reshape(x, [outer, 1, reduced, inner]) as tf.Tensor4D;
    const mean = tf.avgPool(rows, [1, reduced], 1, 'valid');
    return tf.reshape(tf.mul(mean, reduced), outShape);
  },
);
