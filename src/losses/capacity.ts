// Controlled-capacity KL terms (Burgess et al. 2018): gamma * |KL - C| with C rising linearly.
import { tf } from '../util/tf.ts';

/** C after `step` steps: from `min` to `max` linearly over `iterations` steps, then held. */
export function linearCapacity(step: number, min: number, max: number, iterations: number): number {
  if (iterations <= 0) return max;
  return Math.min(max, min + ((max - min) * step) / iterations);
}

/** gamma * |kl - capacity|. */
export function capacityLoss(kl: tf.Scalar, capacity: number, gamma: number): tf.Scalar {
  return tf.tidy(() => tf.mul(tf.abs(tf.sub(kl, capacity)), gamma) as tf.Scalar);
}
