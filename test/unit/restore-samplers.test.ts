// Imputation chains and scores on tiny untrained models: observed pixels never change (bit for
// bit), the same seed gives the same imputation, no tensor is leaked, every model runs.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import type { LabelledImages } from '../../src/eval/images.ts';
import { createModel } from '../../src/models/index.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { ModelTaskError } from '../../src/restore/errors.ts';
import { imputeImages } from '../../src/restore/impute.ts';
import { maskSource, parseMaskSpec } from '../../src/restore/mask.ts';
import { IMPUTE_METHODS } from '../../src/restore/samplers.ts';
import { scoreImages } from '../../src/restore/score.ts';
import { fitDecoderSigma } from '../../src/restore/sigma.ts';
import { fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';

before(async () => {
  await initBackend('wasm');
});

function tinyData(n: number, channels: 1 | 3 = 3): LabelledImages {
  const batch = fixedBatch(n, 32, channels);
  const data: LabelledImages = {
    images: batch.images.dataSync() as Float32Array,
    labels: batch.labels!.dataSync() as Float32Array,
    n,
    size: 32,
    channels,
    labelWidth: LABEL_WIDTH,
    labelKind: 'class',
  };
  tf.dispose([batch.images, batch.labels!]);
  return data;
}

function modelOf(name: (typeof MODEL_NAMES)[number]): VaeModel {
  return createModel(tinyConfig(name, { in_channels: 3 }), 7, name === 'cvae' ? LABEL_WIDTH : 0);
}

describe('imputation chains', () => {
  for (const method of IMPUTE_METHODS) {
    it(`${method}: observed pixels are the input's exactly, missing ones change, nothing leaks, seeded`, async () => {
      const model = modelOf('vae');
      const data = tinyData(5);
      const masks = (await maskSource(parseMaskSpec('random:0.4'), 32, 3))(0, 5);
      const before = tf.memory().numTensors;
      const opts = { method, iters: 3, samples: 2, sigma: 0.3, seed: 11, batch: 2 };
      const a = await imputeImages(model, data, masks, opts);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      let changed = 0;
      for (let p = 0; p < masks.length; p++) {
        for (let c = 0; c < 3; c++) {
          const i = p * 3 + c;
          for (const s of [a.mean, ...a.samples]) {
            if (masks[p] === 0) assert.ok(Object.is(s[i], data.images[i]), `observed value ${i} changed`);
          }
          if (masks[p] === 0) assert.equal(a.spread[i], 0);
          else if (a.mean[i] !== data.images[i]) changed++;
        }
      }
      assert.ok(changed > 0);
      const b = await imputeImages(model, data, masks, opts);
      assert.deepEqual(b.mean, a.mean, 'same seed, same imputation');
      if (method === 'mwg') assert.ok(a.acceptance !== null && a.acceptance >= 0 && a.acceptance <= 1);
      else assert.equal(a.acceptance, null);
      model.dispose();
    });
  }

  for (const name of MODEL_NAMES) {
    it(`${name}: both chains and the scores run and keep observed pixels`, async () => {
      const model = modelOf(name);
      const data = tinyData(3);
      const masks = (await maskSource(parseMaskSpec('center:0.25'), 32, 0))(0, 3);
      const before = tf.memory().numTensors;
      for (const method of IMPUTE_METHODS) {
        const r = await imputeImages(model, data, masks, { method, iters: 2, samples: 1, sigma: 0.5, seed: 1, batch: 3 });
        for (let p = 0; p < masks.length; p++) if (masks[p] === 0) assert.equal(r.mean[p * 3], data.images[p * 3]);
      }
      const sigma = await fitDecoderSigma(model, data, 1);
      const s = await scoreImages(model, data, { sigma, samples: 4, seed: 2, batch: 2 });
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      assert.ok(sigma > 0);
      for (const k of ['neg_elbo', 'neg_iwae', 'recon_mse'] as const)
        assert.ok(s[k].length === 3 && s[k].every(Number.isFinite), `${k} finite`);
      model.dispose();
    });
  }

  it('a model without an encoder is refused in one line', async () => {
    const model = modelOf('vae');
    const networks = model.networks as Record<string, tf.LayersModel>;
    const encoder = networks['encoder']!;
    delete networks['encoder'];
    await assert.rejects(
      () =>
        imputeImages(model, tinyData(1), new Uint8Array(32 * 32).fill(1, 0, 10), {
          method: 'mwg',
          iters: 1,
          samples: 1,
          sigma: 1,
          seed: 0,
          batch: 1,
        }),
      (e: unknown) => e instanceof ModelTaskError && /no encoder/.test(e.message),
    );
    networks['encoder'] = encoder;
    model.dispose();
  });
});

describe('scores', () => {
  it('the IWAE bound with one sample is the one-sample ELBO; more samples tighten it on average', async () => {
    const model = modelOf('vae');
    const data = tinyData(4);
    const one = await scoreImages(model, data, { sigma: 0.5, samples: 1, seed: 3, batch: 4 });
    const many = await scoreImages(model, data, { sigma: 0.5, samples: 16, seed: 3, batch: 4 });
    const mean = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
    assert.ok(mean(many.neg_iwae) <= mean(many.neg_elbo) + 1e-3 * Math.abs(mean(many.neg_elbo)));
    assert.deepEqual(one.recon_mse, many.recon_mse, 'the posterior-mean error does not depend on K');
    assert.deepEqual(await scoreImages(model, data, { sigma: 0.5, samples: 16, seed: 3, batch: 4 }), many, 'seeded');
    model.dispose();
  });
});

describe('restoration tasks', () => {
  it('imputation and denoising numbers: finite, seeded, tensor-free', async () => {
    const { imputationTask, denoisingTask } = await import('../../src/restore/tasks.ts');
    const { parseNoise } = await import('../../src/restore/noise.ts');
    const model = modelOf('vae');
    const test = tinyData(4);
    const val = tinyData(3);
    const masks = (await maskSource(parseMaskSpec('center:0.25'), 32, 0))(0, 4);
    const before = tf.memory().numTensors;
    const opts = { mask: 'center:0.25', methods: ['pseudo-gibbs', 'mwg'] as const, iters: 2, samples: 2, sigma: 0.4, seed: 5, batch: 3 };
    const a = await imputationTask(model, test, masks, opts);
    const d = await denoisingTask(model, val, test, parseNoise('gaussian:0.1'), 5, 3);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    assert.deepEqual(await imputationTask(model, test, masks, opts), a, 'seeded');
    assert.equal(a.missing_fraction, 0.25);
    for (const q of [
      a.methods['mwg']!,
      a.methods['pseudo-gibbs']!,
      a.baselines.harmonic,
      d.noisy,
      d.model,
      d.model_on_clean,
      d.gaussian_blur,
      d.median,
    ]) {
      assert.ok(Number.isFinite(q.psnr) && Number.isFinite(q.ssim));
    }
    assert.ok(a.methods['mwg']!.mean_spread > 0, 'two chains differ');
    model.dispose();
  });
});
