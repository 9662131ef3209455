// KL divergences of the approximate posteriors, as positive numbers (PyTorch-VAE logs the
// negative of the Gaussian one; this is the divergence itself).
import { tf } from '../util/tf.ts';

/**
 * KL(N(mu, exp(logvar)) || N(0, 1)) per sample, summed over latent dimensions:
 * -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).
 */
export function gaussianKlPerSample(mu: tf.Tensor2D, logvar: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.mul(tf.sum(tf.sub(tf.sub(tf.add(logvar, 1), tf.square(mu)), tf.exp(logvar)), 1), -0.5) as tf.Tensor1D);
}

/** Batch mean of gaussianKlPerSample: the KL term of a VAE's loss. */
export function gaussianKl(mu: tf.Tensor2D, logvar: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(gaussianKlPerSample(mu, logvar)) as tf.Scalar);
}

/**
 * KL(q || uniform over K categories) averaged over the batch, q = softmax(logits):
 * sum_k q_k log q_k + log K. Computed from log-softmax, so it stays finite for confident q.
 */
export function categoricalKl(logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const categories = logits.shape[1];
    const logQ = tf.logSoftmax(logits);
    const negEntropy = tf.sum(tf.mul(tf.exp(logQ), logQ), 1);
    return tf.mean(tf.add(negEntropy, Math.log(categories))) as tf.Scalar;
  });
}
