// Shared fixtures of the models tests: tiny configs, a fixed batch of smooth images, a loss context.
import { tf } from '../../src/util/tf.ts';
import { DEFAULT_CONFIG, type ModelConfig, type ModelName } from '../../src/config/schema.ts';
import type { LossContext, ModelBatch } from '../../src/models/base.ts';
import { stepNoise, Stream } from '../../src/util/rng.ts';

export const MODEL_NAMES: ModelName[] = ['vae', 'beta_vae', 'mssim_vae', 'cvae', 'joint_vae', 'vae_gan'];
export const LABEL_WIDTH = 3;

export function tinyConfig(name: ModelName, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    ...DEFAULT_CONFIG.model,
    name,
    image_size: 32,
    hidden_dims: [16, 32],
    latent_dim: 8,
    num_classes: LABEL_WIDTH,
    feature_layer: 1,
    loss_type: 'H',
    ...overrides,
  };
}

/** n smooth, distinct images in [-1, 1] and cyclic one-hot labels. */
export function fixedBatch(n: number, side: number, channels: 1 | 3): ModelBatch {
  const data = new Float32Array(n * side * side * channels);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        for (let c = 0; c < channels; c++) data[k++] = Math.sin((x * (i + 1)) / (side / 6) + c) * Math.cos((y * (n - i)) / (side / 5));
      }
    }
  }
  const classes = tf.tensor1d(
    Array.from({ length: n }, (_, i) => i % LABEL_WIDTH),
    'int32',
  );
  const labels = tf.tidy(() => tf.oneHot(classes, LABEL_WIDTH).toFloat() as tf.Tensor2D);
  classes.dispose();
  return { images: tf.tensor4d(data, [n, side, side, channels]), labels };
}

export function context(step: number, seed = 1): LossContext {
  return { step, minibatchFraction: 0.004, noise: stepNoise(seed, Stream.noise, step), training: true };
}

export function disposeBatch(batch: ModelBatch): void {
  tf.dispose([batch.images, ...(batch.labels ? [batch.labels] : [])]);
}
