// Pixel-space reconstruction losses.
import { tf } from '../util/tf.ts';

/** Mean squared error over every element (PyTorch's F.mse_loss with reduction 'mean'). */
export function mse(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)) as tf.Scalar);
}

/** Mean absolute error over every element (PyTorch's F.l1_loss with reduction 'mean'). */
export function meanAbsoluteError(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(a, b))) as tf.Scalar);
}

/**
 * Negative log-likelihood of `target` under a unit-variance Gaussian centred on `mean`, summed over
 * each image's values and averaged over the batch, without the constant: 0.5 * sum (a - b)^2.
 */
export function gaussianNllPerImage(mean: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mul(tf.div(tf.sum(tf.squaredDifference(mean, target)), mean.shape[0]), 0.5) as tf.Scalar);
}
