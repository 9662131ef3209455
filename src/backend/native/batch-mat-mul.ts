// BatchMatMul on native: TF.js's product of [..., M, K] and [..., K, N] (either operand
// transposed; batch axes equal or broadcast from 1) as ONNX's Gemm (one matrix each side, transposes as attributes)
// or MatMul (batched, Transposes in the graph). Products too small to pay for a session call run
// the wasm kernel.
import { tf } from '../../util/tf.ts';
import { nativeKernel, type NativePlan } from './native-kernel.ts';
import type { Candidate } from './sessions.ts';

/** Below this many multiply-adds the wasm kernel is as fast as a call into onnxruntime. */
export const MIN_NATIVE_MACS = 2 ** 18;

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** The last two axes swapped, as a Transpose perm of rank `rank`. */
function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
  return perm;
}

function matMulCandidates(aShape: number[], bShape: number[], outShape: number[], transposeA: boolean, transposeB: boolean): Candidate[] {
  const io = {
    inputs: [
      { name: 'a', shape: aShape },
      { name: 'b', shape: bShape },
    ],
    outputs: [{ name: 'y', shape: outShape }],
  };
  if (product(aShape.slice(0, -2)) === 1 && product(bShape.slice(0, -2)) === 1) {
    // The output is declared as the Gemm's own [m, n], so that the Gemm writes the caller's buffer.
    return [
      {
        label: 'gemm',
        graph: {
          ...io,
          outputs: [{ name: 'y', shape: outShape.slice(-2) }],
          initializers: [
            { name: 'a_shape', values: aShape.slice(-2) },
            { name: 'b_shape', values: bShape.slice(-2) },
          ],
          nodes: [
            { op: 'Reshape', inputs: ['a', 'a_shape'], outputs: ['a2'] },
            { op: 'Reshape', inputs: ['b', 'b_shape'], outputs: ['b2'] },
            { op: 'Gemm', inputs: ['a2', 'b2'], outputs: ['y'], attrs: { transA: transposeA ? 1 : 0, transB: transposeB ? 1 : 0 } },
          ],
        },
      },
    ];
  }
  const nodes: Candidate['graph']['nodes'][number][] = [];
  let [a, b] = ['a', 'b'];
  if (transposeA) {
    nodes.push({ op: 'Transpose', inputs: ['a'], outputs: ['a_t'], attrs: { perm: swapLastTwo(aShape.length) } });
    a = 'a_t';
  }
  if (transposeB) {
    nodes.push({ op: 'Transpose', inputs: ['b'], outputs: ['b_t'], attrs: { perm: swapLastTwo(bShape.length) } });
    b = 'b_t';
  }
  nodes.push({ op: 'MatMul', inputs: [a, b], outputs: ['y'] });
  return [{ label: 'matmul', graph: { ...io, nodes } }];
}

function plan(inputs: Record<string, tf.TensorInfo>, attrs: tf.BatchMatMulAttrs): NativePlan | undefined {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const rank = a.shape.length;
  if (rank < 2 || b.shape.length !== rank) return undefined;
  const { transposeA, transposeB } = attrs;
  const [rowsA, colsA] = a.shape.slice(-2) as [number, number];
  const [rowsB, colsB] = b.shape.slice(-2) as [number, number];
  const [m, k] = transposeA ? [colsA, rowsA] : [rowsA, colsA];
  const [kB, n] = transposeB ? [colsB, rowsB] : [rowsB, colsB];
  if (k !== kB) return undefined;
  // Outer (batch) axes: equal, or all 1 on one side (broadcast); other broadcasts run the wasm kernel.
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const same = outerA.every((d, i) => d === outerB[i]);
  if (!same && product(outerA) !== 1 && product(outerB) !== 1) return undefined;
  const outer = product(outerA) >= product(outerB) ? outerA : outerB;
  if (product(outer) * m * n * k < MIN_NATIVE_MACS) return undefined;
  const outputShape = [...outer, m, n];
  return {
    key: `${a.shape.join(',')}|${b.shape.join(',')}|${transposeA ? 1 : 0}${transposeB ? 1 : 0}`,
    outputShape,
    candidates: () => matMulCandidates([...a.shape], [...b.shape], outputShape, transposeA, transposeB),
  };
}

export const batchMatMulConfig = nativeKernel(tf.BatchMatMul, ['a', 'b'], plan);
