// Restoration (medvae restore): the denoising output that combines the noisy input with the
// decoder's mean, the restoration metrics, masks, noise, baselines and anomaly scores against hand-
// computed values, and imputation chains and scores on tiny untrained models. One process for all,
// as a process costs about a second to start: each describe block below sets the TF.js backend it
// computes on (wasm) in its own before().
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import type { LabelledImages } from '../../src/eval/images.ts';
import { createModel } from '../../src/models/index.ts';
import { finiteMean, maskedPsnrPerImage, maskedSsimPerImage, psnrPerImage, ssimPerImage } from '../../src/restore/metrics.ts';
import { addNoise, parseNoise } from '../../src/restore/noise.ts';
import {
  decoderVariance,
  denoiseImages,
  denoisingTask,
  noiseVariance,
  posteriorCombination,
  TEST_STREAM,
} from '../../src/restore/tasks.ts';
import { writeNpz } from '../../src/data/npz-writer.ts';
import { anomalyAuroc, checkNormalClasses, parseNormal } from '../../src/restore/anomaly.ts';
import { gaussianBlur, harmonicInpaint, meanFill, medianFilter } from '../../src/restore/baselines.ts';
import type { ImageStack } from '../../src/run/images.ts';
import { MaskError, ModelTaskError, NoiseSpecError, NormalClassError } from '../../src/restore/errors.ts';
import { maskSource, parseMaskSpec } from '../../src/restore/mask.ts';
import { readScoresCsv, writeScoresCsv } from '../../src/restore/scores-csv.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { imputeImages } from '../../src/restore/impute.ts';
import { IMPUTE_METHODS } from '../../src/restore/samplers.ts';
import { scoreImages } from '../../src/restore/score.ts';
import { fitDecoderSigma } from '../../src/restore/sigma.ts';
import { fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('restore-denoise: the posterior combination of input and decoder mean', () => {
  // The denoising output that combines the noisy input with the decoder's mean by their variances:
  // hand-computed cases of each piece, and the task's numbers on a tiny model.

  before(async () => {
    await initBackend('wasm');
  });

  describe('posterior combination', () => {
    it('noise variance in [-1, 1] units: Gaussian (2 sigma)^2, Poisson 4 u / PEAK, none for salt-and-pepper', () => {
      assert.ok(Math.abs(noiseVariance(parseNoise('gaussian:0.1'))!(0.3) - 0.04) < 1e-12);
      const poisson = noiseVariance(parseNoise('poisson:10'))!;
      assert.ok(Math.abs(poisson(0) - 0.2) < 1e-12, 'u = 0.5: 4 * 0.5 / 10');
      assert.equal(poisson(-1), 0, 'black has no photon noise');
      assert.equal(noiseVariance(parseNoise('saltpepper:0.1')), null);
    });

    it("the decoder's variance is the mean squared error at each value over the images", () => {
      const clean = { data: new Float32Array(6), n: 2, size: 1, channels: 3 as const };
      assert.deepEqual(decoderVariance(new Float32Array([1, 0, 2, -1, 0, 0]), clean), new Float32Array([1, 0, 2]));
    });

    it('weighs the input by the decoder variance and the mean by the noise variance', () => {
      const noisy = new Float32Array([1, 1, 1, 1]);
      const decoded = new Float32Array([0, 0, 0, 0.5]);
      const out = posteriorCombination(noisy, decoded, () => 1, new Float32Array([1, 3]));
      // (d2 y + s2 m) / (s2 + d2): (1 + 0) / 2, (3 + 0) / 4, then the same two variances again.
      assert.deepEqual(out, new Float32Array([0.5, 0.75, 0.5, 0.875]));
      assert.deepEqual(
        posteriorCombination(noisy, decoded, () => 0, new Float32Array([0, 0])),
        decoded,
        'no variance at all: the mean',
      );
    });
  });

  describe('denoising task', () => {
    function images(n: number): LabelledImages {
      const batch = fixedBatch(n, 32, 3);
      const data: LabelledImages = {
        images: batch.images.dataSync() as Float32Array,
        labels: batch.labels!.dataSync() as Float32Array,
        n,
        size: 32,
        channels: 3,
        labelWidth: LABEL_WIDTH,
        labelKind: 'class',
      };
      tf.dispose([batch.images, batch.labels!]);
      return data;
    }

    it('reports the combination beside the decoder mean for Gaussian noise, none for salt-and-pepper', async () => {
      const model = createModel(tinyConfig('vae', { in_channels: 3 }), 7);
      const [val, test] = [images(4), images(3)];
      const before = tf.memory().numTensors;
      const denoised = await denoiseImages(model, val, test, parseNoise('gaussian:0.1'), 5, 2);
      const gaussian = denoised.metrics;
      const saltPepper = await denoisingTask(model, val, test, parseNoise('saltpepper:0.1'), 5, 2);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      // The outputs the numbers score: the test stream's noise, and each output's PSNR is its metric's.
      assert.deepEqual(denoised.noisy, addNoise(test.images, 3, 3, parseNoise('gaussian:0.1'), 5, 0, TEST_STREAM));
      const clean = { data: test.images, n: 3, size: 32, channels: 3 as const };
      for (const [values, q] of [
        [denoised.noisy, gaussian.noisy],
        [denoised.mean, gaussian.model],
        [denoised.combined!, gaussian.model_posterior!],
        [denoised.blurred, gaussian.gaussian_blur],
        [denoised.median, gaussian.median],
      ] as const)
        assert.equal(finiteMean(psnrPerImage(values, clean)), q.psnr);
      const posterior = gaussian.model_posterior!;
      assert.ok(Number.isFinite(posterior.psnr) && Number.isFinite(posterior.ssim));
      assert.ok(posterior.decoder_rms > 0);
      // An untrained decoder knows nothing: the combination leans on the input and beats the decoder's mean.
      assert.ok(posterior.psnr > gaussian.model.psnr, `${posterior.psnr} vs ${gaussian.model.psnr}`);
      assert.equal(saltPepper.model_posterior, null);
      model.dispose();
    });
  });
});

describe('restore-metrics: metrics, baselines, masks, noise and anomaly scores', () => {
  // Restoration metrics and baselines on hand-made images against hand-computed values; masks,
  // noise, AUROC of anomaly scores and the scores CSV.

  before(async () => {
    await initBackend('wasm');
  });

  const grey = (size: number, fill: (x: number, y: number) => number): ImageStack => ({
    data: Float32Array.from({ length: size * size }, (_, p) => fill(p % size, Math.floor(p / size))),
    n: 1,
    size,
    channels: 1,
  });

  describe('metrics', () => {
    it('masked PSNR counts only missing pixels: error 0.2 on them -> 10 log10(4 / 0.04) = 20 dB', () => {
      const target = grey(4, () => 0);
      const predicted = new Float32Array(16).fill(0.5);
      const masks = new Uint8Array(16);
      masks.fill(1, 0, 4);
      predicted.fill(0.2, 0, 4);
      assert.ok(Math.abs(maskedPsnrPerImage(predicted, target, masks)[0]! - 20) < 1e-5);
      // All values: mse = (4 * 0.04 + 12 * 0.25) / 16.
      assert.ok(Math.abs(psnrPerImage(predicted, target)[0]! - 10 * Math.log10(4 / ((4 * 0.04 + 12 * 0.25) / 16))) < 1e-5);
    });

    it('masked SSIM over an all-missing mask is the eval SSIM; identical images score 1', async () => {
      const target = grey(16, (x, y) => Math.sin(x / 3) * Math.cos(y / 4));
      const predicted = target.data.map((v, i) => v + 0.1 * Math.sin(i));
      const all = new Uint8Array(256).fill(1);
      assert.ok(Math.abs((await maskedSsimPerImage(predicted, target, all))[0]! - (await ssimPerImage(predicted, target))[0]!) < 1e-5);
      const centre = new Uint8Array(256);
      centre[8 * 16 + 8] = 1;
      assert.ok(Math.abs((await maskedSsimPerImage(target.data, target, centre))[0]! - 1) < 1e-6);
      const corner = new Uint8Array(256);
      corner[0] = 1;
      assert.ok(Number.isNaN((await maskedSsimPerImage(predicted, target, corner))[0]!), 'no valid window is centred on a corner');
    });
  });

  describe('baselines', () => {
    it('mean fill puts the observed mean into the hole', () => {
      const img = grey(3, (x) => x);
      const masks = new Uint8Array(9);
      masks[4] = 1;
      assert.equal(meanFill(img, masks)[4], ((0 + 1 + 2) * 3) / 8 - 1 / 8);
    });

    it('harmonic inpainting recovers a linear ramp inside a hole exactly', () => {
      const ramp = grey(24, (x, y) => -0.9 + 0.05 * x + 0.02 * y);
      const masks = new Uint8Array(24 * 24);
      for (let y = 6; y < 18; y++) for (let x = 5; x < 15; x++) masks[y * 24 + x] = 1;
      const out = harmonicInpaint({ ...ramp, data: ramp.data.map((v, p) => (masks[p] ? 0 : v)) }, masks, { tolerance: 1e-9 });
      for (let p = 0; p < out.length; p++) assert.ok(Math.abs(out[p]! - ramp.data[p]!) < 1e-5, `pixel ${p}: ${out[p]} vs ${ramp.data[p]}`);
    });

    it('blur keeps constants and averages; the median removes one outlier', () => {
      const flat = grey(8, () => 0.3);
      for (const v of gaussianBlur(flat, 1)) assert.ok(Math.abs(v - 0.3) < 1e-6);
      const spike = grey(5, () => 0);
      spike.data[12] = 1;
      assert.equal(medianFilter(spike, 3)[12], 0);
      const blurred = gaussianBlur(spike, 1);
      assert.ok(blurred[12]! < 1 && blurred[12]! > 0 && blurred[11]! > 0);
    });
  });

  describe('masks', () => {
    it('center, box, stripes and random masks at the model size', async () => {
      const center = (await maskSource(parseMaskSpec('center:0.25'), 8, 0))(0, 1);
      assert.equal(
        center.reduce((s, v) => s + v, 0),
        16,
      );
      assert.equal(center[2 * 8 + 2], 1);
      assert.equal(center[1 * 8 + 1], 0);
      const box = (await maskSource(parseMaskSpec('box:1,2,3,1'), 8, 0))(0, 1);
      assert.deepEqual([...box.subarray(16, 24)], [0, 1, 1, 1, 0, 0, 0, 0]);
      const stripes = (await maskSource(parseMaskSpec('stripes:2,1'), 6, 0))(0, 1);
      assert.deepEqual([...stripes.subarray(0, 6)], [1, 1, 0, 1, 1, 0]);
      const random = await maskSource(parseMaskSpec('random:0.5'), 16, 4);
      assert.deepEqual(random(3, 1), random(0, 4).subarray(3 * 256), 'a random mask depends on the image index, not the batch');
    });

    it('bad masks fail in one named line', async () => {
      assert.throws(() => parseMaskSpec('centre:0.2'), MaskError);
      assert.throws(() => parseMaskSpec('center:1.5'), MaskError);
      await assert.rejects(maskSource(parseMaskSpec('box:6,6,4,4'), 8, 0), /reaches past the 8x8/);
      const dir = tempDir('medvae-mask-');
      const png = join(dir, 'm.png');
      writeFileSync(
        png,
        await sharp(Buffer.alloc(28 * 28, 255), { raw: { width: 28, height: 28, channels: 1 } })
          .png()
          .toBuffer(),
      );
      await assert.rejects(maskSource(parseMaskSpec(png), 64, 0), (e: unknown) => e instanceof MaskError && /28x28.*64x64/.test(e.message));
      const empty = join(dir, 'empty.npz');
      writeNpz(empty, { mask: { dtype: '|u1', shape: [8, 8], data: new Uint8Array(64) } });
      const source = await maskSource(parseMaskSpec(empty), 8, 0);
      assert.throws(
        () => source(0, 1),
        (e: unknown) => e instanceof MaskError && /no missing pixels/.test(e.message),
      );
      const ok = join(dir, 'ok.npz');
      writeNpz(ok, {
        test_masks: { dtype: '|u1', shape: [2, 8, 8], data: Uint8Array.from({ length: 128 }, (_, i) => (i % 3 === 0 ? 1 : 0)) },
      });
      assert.equal((await maskSource(parseMaskSpec(ok), 8, 0))(1, 1)[2], 1, 'image 1 gets its own mask (value 66 of the member)');
    });
  });

  describe('noise', () => {
    it('parses the three models and refuses others', () => {
      assert.deepEqual(parseNoise('gaussian:0.1'), { kind: 'gaussian', sigma: 0.1 });
      assert.deepEqual(parseNoise('saltpepper:0.05'), { kind: 'saltpepper', p: 0.05 });
      assert.deepEqual(parseNoise('poisson:30'), { kind: 'poisson', peak: 30 });
      assert.throws(() => parseNoise('speckle:0.1'), NoiseSpecError);
    });

    it('gaussian noise has the asked sigma on the [0, 1] scale; salt and pepper hits the asked fraction; seeded per image', () => {
      const n = 2;
      const clean = new Float32Array(n * 64 * 64).fill(0);
      const noisy = addNoise(clean, n, 1, parseNoise('gaussian:0.05'), 1, 0);
      const sd = Math.sqrt(noisy.reduce((s, v) => s + ((v + 1) / 2 - 0.5) ** 2, 0) / noisy.length);
      assert.ok(Math.abs(sd - 0.05) < 0.003, `sd ${sd}`);
      const sp = addNoise(clean, n, 1, parseNoise('saltpepper:0.1'), 1, 0);
      const hit = sp.filter((v) => v !== 0).length / sp.length;
      assert.ok(Math.abs(hit - 0.1) < 0.02, `hit ${hit}`);
      assert.deepEqual(addNoise(clean.subarray(4096), 1, 1, parseNoise('gaussian:0.05'), 1, 1), noisy.subarray(4096));
    });
  });

  describe('anomaly AUROC and scores.csv', () => {
    it('AUROC of anomalies (non-normal classes) against normal ones, by hand', () => {
      // Normal (class 0) scores 1, 2, 5; anomalies 3, 4, 6: pairs won 2+2+3 of 9 (5 beats 3 and 4).
      assert.ok(Math.abs(anomalyAuroc([1, 2, 5, 3, 4, 6], [0, 0, 0, 1, 2, 1], [0]) - 7 / 9) < 1e-12);
      assert.deepEqual(parseNormal('0,2'), [0, 2]);
      assert.throws(
        () => checkNormalClasses([0, 1, 1], [3], ['a', 'b']),
        (e: unknown) => e instanceof NormalClassError && /class 3/.test(e.message),
      );
      assert.throws(() => checkNormalClasses([0, 0], [0], ['a']), NormalClassError);
      assert.throws(() => checkNormalClasses([null, 0], [0], ['a']), NormalClassError);
    });

    it('writes and reads back', async () => {
      const path = join(tempDir('medvae-scores-'), 'scores.csv');
      const t = { index: [3, 7], label: [1, null], neg_elbo: [-12.5, 3e4], neg_iwae: [-13.25, 2.9e4], recon_mse: [0.01, 0.5] };
      writeScoresCsv(path, t);
      assert.deepEqual(readScoresCsv(path), t);
    });
  });
});

describe('restore-samplers: imputation chains and scores on tiny models', () => {
  // Imputation chains and scores on tiny untrained models: observed pixels never change (bit for
  // bit), the same seed gives the same imputation, no tensor is leaked, every model runs.

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
});
