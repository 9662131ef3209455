// BatchMatMul on wasm with transposeA or transposeB. TF.js's wasm kernel hands only the
// untransposed product to XNNPACK; a transposed operand takes a plain C++ loop (an order of magnitude slower for the
// [64,2048]^T x [64,128] weight gradient of a Dense layer). Transposing the operand first (a copy
// of one operand, not a product) and multiplying untransposed is cheap. Batched products
// (outer dims other than 1) and non-float32 inputs run the stock kernel.
import { tf } from '../../util/tf.ts';
import { overridingWasmKernel } from './compose.ts';

const isSingleMatrix = (shape: readonly number[]): boolean => shape.slice(0, -2).every((size) => size === 1);

/** `x` with its last two axes swapped. */
function swapLastTwo(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  const rank = perm.length;
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return tf.transpose(x, perm);
}

export const batchMatMulConfig = overridingWasmKernel(
  tf.BatchMatMul,
  ['a', 'b'],
  ({ a, b }, { transposeA, transposeB }: tf.BatchMatMulAttrs) =>
    (transposeA || transposeB) && a.dtype === 'float32' && b.dtype === 'float32' && isSingleMatrix(a.shape) && isSingleMatrix(b.shape),
  ({ a, b }, { transposeA, transposeB }: tf.BatchMatMulAttrs) =>
    tf.matMul(transposeA ? swapLastTwo(a) : a, transposeB ? swapLastTwo(b) : b),
);
