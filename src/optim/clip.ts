// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: when the L2 norm of all of a
// param group's gradients together exceeds maxNorm, every gradient is scaled by the same factor so
// that the norm becomes maxNorm; directions are kept. The factor stays a tensor (min(1, maxNorm /
// (norm + 1e-6)), always multiplied, as PyTorch does) so that clipping never waits on a readback.
import { tf } from '../util/tf.ts';

/** The gradients scaled to a global L2 norm of at most maxNorm: new tensors, the caller disposes them. */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): tf.NamedTensorMap {
  // Names sorted: the sum's order, and so its rounding, is the same in every process.
  const names = Object.keys(grads).sort();
  return tf.tidy(() => {
    const squares = names.map((name) => tf.sum(tf.square(grads[name]!)));
    const norm = tf.sqrt(squares.length === 1 ? squares[0]! : tf.addN(squares));
    const factor = tf.minimum(tf.scalar(1), tf.div(tf.scalar(maxNorm), tf.add(norm, tf.scalar(1e-6))));
    return Object.fromEntries(names.map((name) => [name, tf.mul(grads[name]!, factor)]));
  });
}
