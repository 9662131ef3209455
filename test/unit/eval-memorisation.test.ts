// The privacy numbers flag a model that memorised its training images. A small VAE (16x16 grey,
// latent 16, KL weight 1e-3) trained for 400 steps on 16 noisy band images learns their noise by
// heart; the same model and steps on 512 such images cannot, and generalises. Held-out images come
// from the same distribution. The memoriser's -ELBO and reconstruction error tell its training
// images from held-out ones (AUROC near 1) and its fitted-latent samples land on training images;
// the control's numbers stay near chance.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import { evaluateModel, type EvalMetrics } from '../../src/eval/evaluate.ts';
import { pixelMean } from '../../src/eval/images.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients } from '../../src/train/step.ts';
import { stepNoise, Stream } from '../../src/util/rng.ts';
import { bandImages, tinyModelConfig } from '../helpers/eval-helpers.ts';

const SIZE = 16;
const STEPS = 400;
const BATCH = 16;

before(async () => {
  await initBackend('wasm', () => undefined);
});

/** A VAE trained for STEPS steps on `n` noisy band images, cycling through them BATCH at a time. */
function trainedOn(n: number): { model: VaeModel; data: ReturnType<typeof bandImages> } {
  const model = createModel({ ...tinyModelConfig('vae', SIZE), latent_dim: 16, hidden_dims: [8, 16], kld_weight: 1e-3 }, 1);
  const data = bandImages(n, SIZE, 100 + n, 0.4);
  const optimizers = createOptimizers(model, { ...DEFAULT_CONFIG.train, lr: 5e-3 });
  const images = tf.tensor4d(data.images, [n, SIZE, SIZE, 1]);
  for (let step = 0; step < STEPS; step++) {
    const batch = tf.tidy(() =>
      tf.gather(
        images,
        Array.from({ length: BATCH }, (_, k) => (step * BATCH + k) % n),
      ),
    );
    const grads = computeGradients(
      model,
      { images: batch as tf.Tensor4D },
      { step, minibatchFraction: BATCH / n, noise: stepNoise(1, Stream.noise, step), training: true },
    );
    applyGradients(optimizers, grads.groups);
    disposeGradients(grads);
    batch.dispose();
  }
  images.dispose();
  for (const o of Object.values(optimizers)) o.dispose();
  return { model, data };
}

async function evaluated(n: number): Promise<EvalMetrics> {
  const { model, data } = trainedOn(n);
  try {
    return await evaluateModel(
      {
        model,
        train: data,
        trainData: { datasetHash: `memorise-${n}`, split: 'train', resize: 'bilinear' },
        trainMean: pixelMean(data),
        latentFitImages: data,
        heldOut: bandImages(16, SIZE, 999, 0.4),
        heldOutSplit: 'test',
      },
      { n: 16, seed: 1, recipe: { steps: 20, batchSize: 16, lr: 1e-2 }, kidSubsets: 2, kidSubsetSize: 16 },
    );
  } finally {
    model.dispose();
  }
}

test('a model trained to memorise 16 images is flagged; one trained on 512 is not', async (t) => {
  const before = tf.memory().numTensors;
  const memoriser = await evaluated(16);
  const control = await evaluated(512);
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  const summary = (m: EvalMetrics): string =>
    JSON.stringify({
      auroc_neg_elbo: m.membership?.neg_elbo.auroc,
      auroc_recon_mse: m.membership?.recon_mse.auroc,
      chance_halfwidth: m.membership?.chance_halfwidth_95,
      fitted_closer_to_train: m.fitted_posterior?.privacy?.share_closer_to_train,
    });
  t.diagnostic(`memoriser ${summary(memoriser)}`);
  t.diagnostic(`control ${summary(control)}`);
  const m = memoriser.membership;
  const c = control.membership;
  assert.ok(m && c, 'membership inference ran');
  // 16 vs 16 images: chance is 0.5 ± 0.20.
  assert.ok(m.neg_elbo.auroc > 0.9 && m.recon_mse.auroc > 0.9, `memoriser ${summary(memoriser)}`);
  assert.ok(
    c.neg_elbo.auroc < 0.5 + c.chance_halfwidth_95 && c.recon_mse.auroc < 0.5 + c.chance_halfwidth_95,
    `control ${summary(control)}`,
  );
  assert.ok(m.neg_elbo.auroc - c.neg_elbo.auroc > 0.2, `memoriser ${summary(memoriser)} vs control ${summary(control)}`);
  // Draws from the memoriser's fitted latent land nearer its training images than any held-out image.
  const mp = memoriser.fitted_posterior?.privacy;
  const cp = control.fitted_posterior?.privacy;
  assert.ok(mp && cp, 'privacy of fitted-latent draws');
  assert.ok(
    mp.share_closer_to_train.pixel > cp.share_closer_to_train.pixel + 0.2,
    `memoriser ${summary(memoriser)} vs control ${summary(control)}`,
  );
});
