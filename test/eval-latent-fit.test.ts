// The aggregate posterior fit: its moments are those of the encoder's outputs, per class for the
// conditional model, and its draws have the fitted mean and covariance.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import type { LabelledImages } from '../src/eval/images.ts';
import { drawLatents, fitLatents, LatentFitError, normalFrom, type LatentGaussian } from '../src/eval/latent-fit.ts';
import { createModel } from '../src/models/index.ts';
import { mulberry32 } from '../src/util/rng.ts';
import { disposeBatch, fixedBatch, tinyConfig } from './models-helpers.ts';

before(async () => {
  await initBackend('cpu');
});

function labelled(n: number): LabelledImages {
  const batch = fixedBatch(n, 32, 3);
  const out: LabelledImages = {
    images: batch.images.dataSync() as Float32Array,
    labels: batch.labels!.dataSync() as Float32Array,
    n,
    size: 32,
    channels: 3,
    labelWidth: 3,
    labelKind: 'class',
  };
  disposeBatch(batch);
  return out;
}

/** cov = factor factor^T, entry (i, j). */
function covariance(g: LatentGaussian, i: number, j: number): number {
  let s = 0;
  for (let k = 0; k < g.d; k++) s += g.factor[i * g.d + k]! * g.factor[j * g.d + k]!;
  return s;
}

describe('aggregate posterior fit', () => {
  it('has the mean of the encoder means and their covariance plus the mean posterior variance', async () => {
    const model = createModel(tinyConfig('vae'), 3);
    const data = labelled(9);
    const fit = await fitLatents(model, data);
    const d = model.config.latent_dim;
    const [mu, variance] = tf.tidy(() => {
      const enc = model.encode(tf.tensor4d(data.images, [9, 32, 32, 3]), undefined, false);
      return [enc.mu.arraySync(), tf.exp(enc.logvar).arraySync()];
    });
    for (let j = 0; j < d; j++) {
      const mean = mu.reduce((s, row) => s + row[j]!, 0) / 9;
      assert.ok(Math.abs(fit.all.mean[j]! - mean) < 1e-5, `mean ${j}`);
      const spread = mu.reduce((s, row) => s + (row[j]! - mean) ** 2, 0) / 8;
      const posterior = variance.reduce((s, row) => s + row[j]!, 0) / 9;
      assert.ok(Math.abs(covariance(fit.all, j, j) - (spread + posterior)) < 1e-4 * (spread + posterior), `variance ${j}`);
    }
    assert.deepEqual(fit.perClass, [], 'an unconditional model gets one fit');
    model.dispose();
  });

  it('fits every class of a conditional model on its own images', async () => {
    const model = createModel(tinyConfig('cvae'), 3);
    // Labels cycle 0, 1, 2: seven images give classes of 3, 2 and 2.
    const fit = await fitLatents(model, labelled(7));
    assert.equal(fit.perClass.length, 3);
    assert.ok(fit.perClass.every((g) => g !== undefined));
    assert.notDeepEqual(Array.from(fit.perClass[0]!.mean), Array.from(fit.perClass[1]!.mean));
    model.dispose();
  });

  it('refuses a model with a discrete latent part, naming it', async () => {
    const model = createModel(tinyConfig('joint_vae'), 3);
    await assert.rejects(
      () => fitLatents(model, labelled(4)),
      (e: unknown) => e instanceof LatentFitError && /joint_vae/.test(e.message),
    );
    model.dispose();
  });

  it('draws with the fitted mean and covariance', () => {
    // cov = [[4, 2], [2, 5]] = F F^T with F = [[2, 0], [1, 2]].
    const g: LatentGaussian = { d: 2, mean: Float64Array.from([1, -3]), factor: Float64Array.from([2, 0, 1, 2]) };
    const n = 40000;
    const z = drawLatents(g, n, normalFrom(mulberry32(7)));
    const m = [0, 1].map((j) => Array.from({ length: n }, (_, i) => z[i * 2 + j]!).reduce((a, b) => a + b, 0) / n);
    const c = (a: number, b: number): number =>
      Array.from({ length: n }, (_, i) => (z[i * 2 + a]! - m[a]!) * (z[i * 2 + b]! - m[b]!)).reduce((x, y) => x + y, 0) / (n - 1);
    assert.ok(Math.abs(m[0]! - 1) < 0.05 && Math.abs(m[1]! + 3) < 0.05, `mean ${m}`);
    assert.ok(
      Math.abs(c(0, 0) - 4) < 0.15 && Math.abs(c(0, 1) - 2) < 0.15 && Math.abs(c(1, 1) - 5) < 0.15,
      `cov ${c(0, 0)} ${c(0, 1)} ${c(1, 1)}`,
    );
  });
});
