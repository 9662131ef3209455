// The VAE-GAN as Larsen et al. (2016) meant it: BatchNorm sees real and fake images as one batch,
// the learned similarity is a per-image Gaussian likelihood, and a short run learns to reconstruct
// better than the mean image. The gates that keep the adversarial game balanced are held to their
// rule in no-sync-readback.test.ts.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG, type ModelConfig } from '../../src/config/schema.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients } from '../../src/train/step.ts';
import { context, disposeBatch, fixedBatch, tinyConfig } from '../helpers/models-helpers.ts';

/** Steps of the learning test: enough for the tiny model (its MSE falls to about 0.25 of the mean image's), a second on wasm. */
const STEPS = 50;

before(async () => {
  await initBackend('wasm');
});

/** Records the batch size of every call of a network during `fn`. */
function batchSizesOf(model: VaeModel, network: string, fn: () => void): number[] {
  const net = model.networks[network]!;
  const apply = net.apply.bind(net);
  const sizes: number[] = [];
  net.apply = ((inputs, kwargs) => {
    const first = Array.isArray(inputs) ? inputs[0]! : inputs;
    sizes.push((first as tf.Tensor).shape[0]!);
    return apply(inputs, kwargs);
  }) as typeof net.apply;
  try {
    fn();
  } finally {
    net.apply = apply;
  }
  return sizes;
}

function scalarTerms(config: ModelConfig): Record<string, number> {
  const model = createModel(config, 5);
  const batch = fixedBatch(4, 32, 3);
  const grads = computeGradients(model, batch, context(2));
  const out = Object.fromEntries(Object.entries(grads.terms).map(([k, v]) => [k, v.dataSync()[0]!]));
  disposeGradients(grads);
  disposeBatch(batch);
  model.dispose();
  return out;
}

describe('VAE-GAN', () => {
  it('runs the decoder once over posterior and prior latents and the discriminator once over real, reconstructed and prior images', () => {
    const model = createModel(tinyConfig('vae_gan'), 5);
    const batch = fixedBatch(4, 32, 3);
    let decoderSizes: number[] = [];
    const discriminatorSizes = batchSizesOf(model, 'discriminator', () => {
      decoderSizes = batchSizesOf(model, 'decoder', () => disposeGradients(computeGradients(model, batch, context(1))));
    });
    assert.deepEqual(decoderSizes, [8]);
    assert.deepEqual(discriminatorSizes, [12]);
    disposeBatch(batch);
    model.dispose();
  });

  it('adds the pixel likelihood to the learned similarity with pixel_weight', () => {
    const features = scalarTerms(tinyConfig('vae_gan', { pixel_weight: 0 }));
    const both = scalarTerms(tinyConfig('vae_gan', { pixel_weight: 2 }));
    // Same weights and noise: the difference is 2 x 0.5 x the per-image pixel squared error, i.e.
    // the mean squared error times the values per image (32 x 32 x 3).
    const expected = features['dis_llike']! + 2 * 0.5 * both['reconstruction']! * 32 * 32 * 3;
    assert.ok(Math.abs(both['dis_llike']! - expected) < 1e-3 * expected, `${both['dis_llike']} vs ${expected}`);
  });
});

describe('VAE-GAN learning', () => {
  it('learns to reconstruct a tiny fixed dataset better than its mean image', () => {
    // The settings of configs/vae_gan_retinamnist.yaml on a tiny network, at a learning rate that
    // takes it there in STEPS (each costs about the same whatever the image size).
    // 16x16 images: a quarter of the 32x32 cost per step, the same network widths; 4 of them.
    const config = tinyConfig('vae_gan', {
      image_size: 16,
      kld_weight: 4,
      upsample: 'resize',
      recon_gamma: 0.01,
      pixel_weight: 10,
      gan_margin: 0.35,
      feature_layer: 2,
    });
    const model = createModel(config, 5);
    const optimizers = createOptimizers(model, { ...DEFAULT_CONFIG.train, lr: 0.002, lr_discriminator: 0.002 });
    const batch = fixedBatch(4, 16, 3);
    for (let step = 0; step < STEPS; step++) {
      const grads = computeGradients(model, batch, context(step));
      applyGradients(optimizers, grads.groups);
      disposeGradients(grads);
    }
    const [reconError, meanError] = tf.tidy(() => {
      const recon = model.reconstruct(batch.images);
      const mean = tf.mean(batch.images, 0, true);
      return [tf.mean(tf.squaredDifference(recon, batch.images)), tf.mean(tf.squaredDifference(mean, batch.images))].map(
        (t) => t.dataSync()[0]!,
      );
    });
    assert.ok(reconError < 0.5 * meanError!, `reconstruction MSE ${reconError} vs the mean image's ${meanError}`);
    for (const o of Object.values(optimizers)) o.dispose();
    disposeBatch(batch);
    model.dispose();
  });
});
