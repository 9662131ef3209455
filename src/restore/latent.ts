// Exact log-densities of the latent, for the importance weights of IWAE and the Metropolis ratio.
// The continuous part is the encoder's diagonal Gaussian q(z|x) against the N(0, I) prior. A
// JointVAE's discrete latents are drawn here as exact one-hot categories (not the Gumbel-softmax
// relaxation training uses, whose density is not the categorical one), with log q(c|x) from the
// logits and the uniform prior 1/K; the decoder takes one-hots as its posterior-mean input does.
import { tf } from '../util/tf.ts';
import type { Encoding, StepNoise } from '../models/base.ts';

const LOG_2PI = Math.log(2 * Math.PI);

/** Continuous latent width (the rest of a latent row, if any, is one-hot discrete blocks). */
function continuousWidth(enc: Encoding): number {
  return enc.mu.shape[1];
}

/** z ~ q(z|x): reparameterised Gaussian part, then one sampled category per discrete latent. */
export function sampleLatent(enc: Encoding, noise: StepNoise): tf.Tensor2D {
  return tf.tidy(() => {
    const eps = noise.normal(enc.mu.shape);
    const continuous = tf.add(enc.mu, tf.mul(eps, tf.exp(tf.mul(enc.logvar, 0.5))));
    const discrete = (enc.discreteLogits ?? []).map((logits) => {
      const k = logits.shape[1];
      // Inverse-CDF draw from the softmax: the first category whose cumulative probability exceeds u.
      const cdf = tf.cumsum(tf.softmax(logits), 1);
      const u = noise.uniform([logits.shape[0], 1]);
      const index = tf.cast(tf.minimum(tf.sum(tf.cast(tf.less(cdf, u), 'int32'), 1), k - 1), 'int32');
      return tf.oneHot(index as tf.Tensor1D, k).toFloat();
    });
    return tf.concat([continuous, ...discrete], 1) as tf.Tensor2D;
  });
}

/** log q(z|x) per row. */
export function logPosterior(enc: Encoding, z: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const d = continuousWidth(enc);
    const zc = tf.slice(z, [0, 0], [-1, d]);
    const gaussian = tf.mul(
      tf.sum(tf.add(tf.add(tf.div(tf.square(tf.sub(zc, enc.mu)), tf.exp(enc.logvar)), enc.logvar), LOG_2PI), 1),
      -0.5,
    );
    let offset = d;
    const discrete = (enc.discreteLogits ?? []).map((logits) => {
      const k = logits.shape[1];
      const onehot = tf.slice(z, [0, offset], [-1, k]);
      offset += k;
      return tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1);
    });
    return discrete.reduce<tf.Tensor>((acc, t) => tf.add(acc, t), gaussian) as tf.Tensor1D;
  });
}

/** log p(z) per row: standard normal continuous part, uniform categories. */
export function logPrior(enc: Encoding, z: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const d = continuousWidth(enc);
    const zc = tf.slice(z, [0, 0], [-1, d]);
    const gaussian = tf.mul(tf.sum(tf.add(tf.square(zc), LOG_2PI), 1), -0.5);
    const discrete = (enc.discreteLogits ?? []).reduce((acc, logits) => acc - Math.log(logits.shape[1]), 0);
    return tf.add(gaussian, discrete) as tf.Tensor1D;
  });
}

/**
 * log N(x; mean, sigma^2 I) per image, summed over the values where `weight` is 1 (weight broadcasts
 * over channels: N x H x W x 1, or omitted for every value).
 */
export function gaussianLogLikelihood(x: tf.Tensor4D, mean: tf.Tensor4D, sigma: number, weight?: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => {
    const perValue = tf.add(tf.div(tf.square(tf.sub(x, mean)), sigma * sigma), Math.log(2 * Math.PI * sigma * sigma));
    const counted = weight ? tf.mul(perValue, weight) : perValue;
    return tf.mul(tf.sum(counted, [1, 2, 3]), -0.5) as tf.Tensor1D;
  });
}
