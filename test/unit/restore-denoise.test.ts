// The denoising output that combines the noisy input with the decoder's mean by their variances:
// hand-computed cases of each piece, and the task's numbers on a tiny model.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import type { LabelledImages } from '../../src/eval/images.ts';
import { createModel } from '../../src/models/index.ts';
import { finiteMean, psnrPerImage } from '../../src/restore/metrics.ts';
import { addNoise, parseNoise } from '../../src/restore/noise.ts';
import {
  decoderVariance,
  denoiseImages,
  denoisingTask,
  noiseVariance,
  posteriorCombination,
  TEST_STREAM,
} from '../../src/restore/tasks.ts';
import { fixedBatch, LABEL_WIDTH, tinyConfig } from '../helpers/models-helpers.ts';

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
