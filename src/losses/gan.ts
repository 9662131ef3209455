// Adversarial losses on discriminator logits.
import { tf } from '../util/tf.ts';

/**
 * Binary cross-entropy of sigmoid(logits) against a constant target (1 = real, 0 = fake), batch
 * mean, in the stable form max(x, 0) - x * t + log(1 + exp(-|x|)).
 */
export function bceWithLogits(logits: tf.Tensor, target: 0 | 1): tf.Scalar {
  return tf.tidy(() => {
    const linear = target === 1 ? tf.sub(tf.relu(logits), logits) : tf.relu(logits);
    return tf.mean(tf.add(linear, tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))) as tf.Scalar;
  });
}
