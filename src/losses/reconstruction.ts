// Pixel-space reconstruction losses.
import * as tf from '@tensorflow/tfjs';

/** Mean squared error over every element (PyTorch's F.mse_loss with reduction 'mean'). */
export function mse(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)) as tf.Scalar);
}
