// Evaluation end to end on tiny images: closed-form reconstruction numbers from a stand-in model,
// sample-quality ordering, determinism and the feature-net cache with a real (untrained) CVAE.
//
// The privacy numbers flag a model that memorised its training images. A small VAE (16x16 grey,
// latent 16, KL weight 1e-3) trained for 200 steps on 16 noisy band images learns their noise by
// heart; the same model and steps on 512 such images cannot, and generalises. Held-out images come
// from the same distribution. The memoriser's -ELBO and reconstruction error tell its training
// images from held-out ones (AUROC near 1) and its fitted-latent samples land on training images;
// the control's numbers stay near chance.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { psnrOf, reconstructionBaselines, reconstructionMetrics } from '../../src/eval/reconstruction.ts';
import { evaluateModel, type EvalMetrics, type EvalOptions } from '../../src/eval/evaluate.ts';
import { classifierScores, majorityAccuracy } from '../../src/eval/utility.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients } from '../../src/train/step.ts';
import { stepNoise, Stream } from '../../src/util/rng.ts';
import type { FeatureNetData } from '../../src/eval/feature-cache.ts';
import { pixelMean, type LabelledImages } from '../../src/eval/images.ts';
import { bandImages, LabelledStandIn, multiBandImages, StandInModel, tinyModelConfig, unlabelled } from '../helpers/eval-helpers.ts';

const SIZE = 16;
const BANDS: FeatureNetData = { datasetHash: 'bands', split: 'train', resize: 'bilinear' };

// The pure-JS cpu backend's conv gradients are ~50x slower than wasm's.
before(async () => {
  await initBackend('wasm');
});
// Feature nets of the band data shared by the tests that do not count the cache's files: a cached
// net scores exactly as the freshly trained one (the determinism test below checks that), so which
// test trains it first does not change any number.
const sharedCache = mkdtempSync(join(tmpdir(), 'medvae-eval-shared-'));
after(() => rmSync(sharedCache, { recursive: true, force: true }));
// Classifiers (feature net and TSTR's) of 10 steps at batch 16: the bands separate within a few
// epochs (every threshold below holds by a wide margin at 10; each classifier costs its steps).
const QUICK: Omit<EvalOptions, 'n' | 'seed'> = {
  recipe: { steps: 10, batchSize: 16, lr: 1e-2 },
  kidSubsets: 5,
  kidSubsetSize: 20,
  utilitySeeds: 2,
};

const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
}

test('PSNR of a known MSE on [-1, 1] images: 10 log10(4 / mse)', () => {
  close(psnrOf(0.01), 10 * Math.log10(400), 1e-12, 'psnr(0.01)');
  close(psnrOf(4), 0, 1e-12, 'psnr(4)');
  // 0.01 on [-1, 1] is 0.0025 on [0, 1]: 10 log10(1 / 0.0025), the same 26.02 dB.
  close(psnrOf(0.01), 10 * Math.log10(1 / 0.0025), 1e-12, 'range invariance');
});

test('reconstruction metrics of a constant-output model match the closed form', async () => {
  // Every pixel of every image is 0.5 + 0 noise; the model outputs 0.4: squared error 0.01 each.
  const data = bandImages(6, SIZE, 1, 0);
  data.images.fill(0.5);
  const m = await reconstructionMetrics(new StandInModel(tinyModelConfig('vae', SIZE), 0.4, data, 3), data, 7, 4);
  const d = SIZE * SIZE;
  close(m.mse, 0.01, 1e-7, 'mse');
  close(m.psnr, 10 * Math.log10(400), 1e-4, 'psnr');
  // KL(N(1, 1) || N(0, 1)) = mu^2 / 2 per dimension, 3 dimensions.
  close(m.kl, 1.5, 1e-6, 'kl');
  // sigma^2 = 0.01 (ML estimate): NLL = d/2 + d/2 log(2 pi 0.01).
  close(m.decoder_sigma, 0.1, 1e-6, 'sigma');
  const nll = d / 2 + (d / 2) * Math.log(2 * Math.PI * 0.01);
  close(m.recon_nll, nll, 1e-3, 'recon nll');
  close(m.nelbo, nll + 1.5, 1e-3, 'nelbo');
  assert.equal(m.n, 6);
  // Constant images vs another constant: structure term is 1, luminance (2*0.5*0.4 + C1)/(0.25 + 0.16 + C1) < 1.
  assert.ok(m.ssim > 0.9 && m.ssim < 1, `ssim ${m.ssim}`);
});

test('a discrete latent adds KL(Cat(q) || uniform) to the Gaussian KL', async () => {
  const data = bandImages(4, SIZE, 1, 0);
  // q = softmax(0, ln 3) = (1/4, 3/4): KL = 1/4 ln 1/4 + 3/4 ln 3/4 + ln 2.
  const m = await reconstructionMetrics(new StandInModel(tinyModelConfig('joint_vae', SIZE), 0, data, 2, [0, Math.log(3)]), data, 7, 4);
  const discrete = 0.25 * Math.log(0.25) + 0.75 * Math.log(0.75) + Math.log(2);
  close(m.kl, 1 + discrete, 1e-6, 'kl');
});

test('classifier scores: top-1 accuracy, per-finding accuracy and AUC', () => {
  const probs = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.5, 0.3, 0.2]);
  const targets = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const s = classifierScores(probs, targets, 3, 3, 'class');
  close(s.accuracy, 2 / 3, 1e-12, 'top-1');
  // Class 0: pos {0.7}, neg {0.1, 0.5} -> 1; class 1: pos {0.8} vs {0.2, 0.3} -> 1; class 2: pos {0.2} vs {0.1, 0.1} -> 1.
  close(s.auc ?? NaN, 1, 1e-12, 'auc');
  const ml = classifierScores(Float32Array.from([0.9, 0.4, 0.6, 0.2]), Float32Array.from([1, 1, 0, 0]), 2, 2, 'multilabel');
  close(ml.accuracy, 2 / 4, 1e-12, 'per-finding accuracy');
  // Finding 0: pos {0.9} vs neg {0.6} -> 1; finding 1: pos {0.4} vs neg {0.2} -> 1.
  close(ml.auc ?? NaN, 1, 1e-12, 'per-finding auc');
});

test('samples drawn from the real distribution score better than a collapsed generator', async () => {
  const train = bandImages(90, SIZE, 2);
  const heldOut = bandImages(60, SIZE, 3);
  const config = tinyModelConfig('vae', SIZE);
  const realLike = new StandInModel(config, 0, bandImages(60, SIZE, 4));
  const collapsedSamples = bandImages(60, SIZE, 5);
  // Every sample is the same class-0 image: no diversity, wrong distribution.
  const first = collapsedSamples.images.slice(0, SIZE * SIZE);
  for (let i = 0; i < 60; i++) collapsedSamples.images.set(first, i * SIZE * SIZE);
  const collapsed = new StandInModel(config, 0, collapsedSamples);
  const inputs = { train, trainData: BANDS, trainMean: pixelMean(train), heldOut, heldOutSplit: 'test' };
  const good = await evaluateModel({ ...inputs, model: realLike }, { ...QUICK, n: 60, seed: 1, featureCacheDir: sharedCache });
  const bad = await evaluateModel({ ...inputs, model: collapsed }, { ...QUICK, n: 60, seed: 1, featureCacheDir: sharedCache });
  assert.ok(
    good.sample_quality.frechet_distance < bad.sample_quality.frechet_distance,
    `FD ${good.sample_quality.frechet_distance} vs ${bad.sample_quality.frechet_distance}`,
  );
  const goodKid = good.sample_quality.kernel_distance;
  assert.ok(
    Math.abs(goodKid.mean) < bad.sample_quality.kernel_distance.mean,
    `KID ${goodKid.mean} vs ${bad.sample_quality.kernel_distance.mean}`,
  );
  // Identical samples have MS-SSIM 1 with each other; distinct noisy images less.
  close(bad.diversity.ms_ssim_generated, 1, 1e-4, 'collapsed diversity');
  // One repeated image covers one point of the real manifold: recall falls to a few held-out images, precision stays.
  const pr = (m: typeof good): string => JSON.stringify(m.sample_quality.precision_recall);
  assert.ok(bad.sample_quality.precision_recall.recall < 0.2, `collapsed recall: ${pr(bad)}`);
  assert.ok(good.sample_quality.precision_recall.recall > 0.6, `real-like recall: ${pr(good)}`);
  assert.ok(good.sample_quality.precision_recall.precision > 0.6, `real-like precision: ${pr(good)}`);
  assert.equal(good.sample_quality.precision_recall.k, 3);
  assert.ok(good.diversity.ms_ssim_generated < 0.99, `real-like diversity ${good.diversity.ms_ssim_generated}`);
  assert.equal(good.tstr, null, 'no TSTR for an unconditional model');
  assert.equal(good.sample_quality.n_generated, 60);
});

test('eval of a conditional model is deterministic, reuses the cached feature net, and reports TSTR', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'medvae-eval-'));
  try {
    const train = bandImages(60, SIZE, 2);
    const heldOut = bandImages(30, SIZE, 3);
    const inputs = { train, trainData: BANDS, trainMean: pixelMean(train), heldOut, heldOutSplit: 'test' };
    const run = async (): Promise<Awaited<ReturnType<typeof evaluateModel>>> => {
      const model = createModel(tinyModelConfig('cvae', SIZE), 5, 3);
      try {
        return await evaluateModel({ ...inputs, model }, { ...QUICK, n: 24, seed: 9, featureCacheDir: cacheDir });
      } finally {
        model.dispose();
      }
    };
    const before = tf.memory().numTensors;
    const first = await run();
    const cached = readdirSync(cacheDir);
    assert.equal(cached.length, 1, `one cached feature net, got ${cached.join(', ')}`);
    assert.equal(cached[0], first.sample_quality.feature_net.id);
    const second = await run();
    assert.deepEqual(second, first);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    assert.ok(first.tstr, 'conditional model gets TSTR');
    assert.equal(first.tstr.n_train, 24);
    assert.equal(first.tstr.n_test, 24);
    for (const s of [first.tstr.tstr, first.tstr.trtr]) {
      assert.ok(s.accuracy >= 0 && s.accuracy <= 1);
      assert.ok(s.auc !== null && s.auc >= 0 && s.auc <= 1);
    }
    // The bands are easy: a classifier on real images separates them.
    assert.ok((first.tstr.trtr.auc ?? 0) > 0.9, `TRTR AUC ${first.tstr.trtr.auc}`);
    // The first classifier seed is the single-seed numbers; the spread is over both seeds.
    const seeds = first.tstr.over_seeds;
    assert.deepEqual(seeds.seeds, [9, 10]);
    assert.equal(seeds.accuracy.tstr.values[0], first.tstr.tstr.accuracy);
    assert.equal(seeds.accuracy.real_plus_synthetic.values[0], first.tstr.augmentation.real_plus_synthetic.accuracy);
    const gain = seeds.accuracy.synthetic_gain;
    assert.ok(gain.low <= gain.mean && gain.mean <= gain.high, JSON.stringify(gain));
    assert.equal(first.reconstruction.n, 24);
    assert.ok(Number.isFinite(first.reconstruction.nelbo));
    // A different seed changes the sampled numbers.
    const model = createModel(tinyModelConfig('cvae', SIZE), 5, 3);
    const other = await evaluateModel({ ...inputs, model }, { ...QUICK, n: 24, seed: 10, featureCacheDir: cacheDir });
    model.dispose();
    assert.notEqual(other.sample_quality.frechet_distance, first.sample_quality.frechet_distance);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('every model kind evaluates to finite numbers, with TSTR for the conditional one only', async () => {
  const train = bandImages(60, SIZE, 2);
  const inputs = { train, trainData: BANDS, trainMean: pixelMean(train), heldOut: bandImages(12, SIZE, 3), heldOutSplit: 'test' };
  for (const kind of ['vae', 'beta_vae', 'mssim_vae', 'cvae', 'joint_vae', 'vae_gan'] as const) {
    const model = createModel(tinyModelConfig(kind, SIZE), 5, 3);
    try {
      const m = await evaluateModel({ ...inputs, model }, { ...QUICK, n: 12, seed: 1, featureCacheDir: sharedCache });
      for (const v of [m.reconstruction.nelbo, m.reconstruction.ms_ssim, m.sample_quality.frechet_distance, m.diversity.ms_ssim_generated])
        assert.ok(Number.isFinite(v), `${kind}: ${v}`);
      assert.equal(m.tstr === null, kind !== 'cvae', `${kind}: TSTR only for the conditional model`);
    } finally {
      model.dispose();
    }
  }
});

test('unlabelled data: the feature net learns rotations, no TSTR, no held-out accuracy', async () => {
  const train = unlabelled(bandImages(60, SIZE, 2));
  const heldOut = unlabelled(bandImages(20, SIZE, 3));
  const model = new StandInModel(tinyModelConfig('vae', SIZE), 0, unlabelled(bandImages(20, SIZE, 4)));
  const m = await evaluateModel(
    { model, train, trainData: { ...BANDS, datasetHash: 'bands-unlabelled' }, trainMean: pixelMean(train), heldOut, heldOutSplit: 'test' },
    { ...QUICK, n: 20, seed: 1 },
  );
  assert.equal(m.sample_quality.feature_net.task, 'rotation');
  assert.equal(m.sample_quality.feature_net.heldout_accuracy, null);
  assert.equal(m.tstr, null);
  assert.ok(Number.isFinite(m.sample_quality.frechet_distance));
});

test('multi-label conditional model: TSTR reports per-finding accuracy and macro AUC', async () => {
  const train = multiBandImages(60, SIZE, 2);
  const heldOut = multiBandImages(24, SIZE, 3);
  const model = createModel(tinyModelConfig('cvae', SIZE), 5, 3);
  try {
    const m = await evaluateModel(
      { model, train, trainData: { ...BANDS, datasetHash: 'multibands' }, trainMean: pixelMean(train), heldOut, heldOutSplit: 'test' },
      { ...QUICK, n: 24, seed: 1 },
    );
    assert.equal(m.sample_quality.feature_net.task, 'multilabel');
    assert.ok(m.tstr);
    assert.equal(m.tstr.label_kind, 'multilabel');
    // Bright bands are trivially separable: real training data gives a near-perfect per-finding AUC.
    assert.ok((m.tstr.trtr.auc ?? 0) > 0.9, `TRTR AUC ${m.tstr.trtr.auc}`);
    assert.ok(m.tstr.tstr.accuracy >= 0 && m.tstr.tstr.accuracy <= 1);
  } finally {
    model.dispose();
  }
});

test('baselines: constant grey and training-mean predictions scored in closed form on constant images', async () => {
  // Held-out image i is the constant v_i; the training mean is the constant m. With no variance in a
  // window, cs = C2 / C2 = 1 and SSIM is the luminance term (2 p v + C1) / (p^2 + v^2 + C1).
  const side = 24;
  const values = [0.5, -0.3, 0.1, 0.8];
  const data = bandImages(values.length, side, 1, 0);
  values.forEach((v, i) => data.images.fill(v, i * side * side, (i + 1) * side * side));
  const m = 0.25;
  const b = await reconstructionBaselines(data, new Float32Array(side * side).fill(m));
  const c1 = (0.01 * 2) ** 2;
  const luminance = (p: number, v: number): number => (2 * p * v + c1) / (p * p + v * v + c1);
  // 24 px: two MS-SSIM scales; the last weight renormalised over the first two.
  const lastWeight = 0.2856 / (0.0448 + 0.2856);
  const expected = (p: number): { mse: number; psnr: number; ssim: number; ms_ssim: number } => ({
    mse: mean(values.map((v) => (v - p) ** 2)),
    psnr: mean(values.map((v) => 10 * Math.log10(4 / (v - p) ** 2))),
    ssim: mean(values.map((v) => luminance(p, v))),
    // A negative last-scale SSIM (opposite signs) is clamped to 0, as pytorch_msssim's relu does.
    ms_ssim: mean(values.map((v) => Math.max(luminance(p, v), 0) ** lastWeight)),
  });
  for (const [name, got, want] of [
    ['grey', b.constant_grey, expected(0)],
    ['train mean', b.train_mean, expected(m)],
  ] as const) {
    close(got.mse, want.mse, 1e-5, `${name} mse`);
    close(got.psnr, want.psnr, 1e-3, `${name} psnr`);
    close(got.ssim, want.ssim, 1e-5, `${name} ssim`);
    close(got.ms_ssim, want.ms_ssim, 1e-5, `${name} ms-ssim`);
  }
});

test('pixelMean is the per-pixel, per-channel mean', () => {
  const data = { ...bandImages(2, 1, 1, 0), channels: 3 as const, images: Float32Array.from([0.1, 0.2, 0.3, 0.5, -0.2, 0.7]) };
  assert.deepEqual(
    Array.from(pixelMean(data), (v) => Math.round(v * 1e6) / 1e6),
    [0.3, 0, 0.5],
  );
});

test("majority accuracy: the training split's most frequent class (per finding: its more frequent value)", () => {
  const train = bandImages(5, 4, 1);
  // Classes 0, 1, 2, 0, 1 -> tie between 0 and 1 at 2 each: argmax takes the first, class 0.
  const test = bandImages(7, 4, 2); // classes 0,1,2,0,1,2,0: three of seven are class 0
  close(majorityAccuracy(train, test, 'class'), 3 / 7, 1e-12, 'class');
  // Findings present in train rows [1,0,1], [1,1,0], [1,0,0]: frequencies 1, 1/3, 1/3 -> predict [1, 0, 0].
  const rows = (labels: number[]): LabelledImages => ({ ...multiBandImages(labels.length / 3, 4, 3), labels: Float32Array.from(labels) });
  // Test rows [1,1,0] and [0,0,1] agree with [1,0,0] on 2 + 1 of 6 (image, finding) pairs.
  close(majorityAccuracy(rows([1, 0, 1, 1, 1, 0, 1, 0, 0]), rows([1, 1, 0, 0, 0, 1]), 'multilabel'), 3 / 6, 1e-12, 'multilabel');
});

test('a conditional model whose samples show their label gives TSTR near 1; one that shows the wrong label, near 0', async () => {
  const train = bandImages(90, SIZE, 2);
  const heldOut = bandImages(45, SIZE, 3);
  const inputs = { train, trainData: BANDS, trainMean: pixelMean(train), heldOut, heldOutSplit: 'test' };
  const options: EvalOptions = { ...QUICK, n: 45, seed: 2, featureCacheDir: sharedCache };
  const honest = await evaluateModel(
    { ...inputs, model: new LabelledStandIn(tinyModelConfig('cvae', SIZE), bandImages(60, SIZE, 4)) },
    options,
  );
  assert.ok(honest.tstr);
  assert.ok(honest.tstr.tstr.accuracy > 0.95, `TSTR accuracy ${honest.tstr.tstr.accuracy}`);
  assert.ok((honest.tstr.tstr.auc ?? 0) > 0.95, `TSTR AUC ${honest.tstr.tstr.auc}`);
  assert.ok((honest.tstr.conditioning.auc ?? 0) > 0.95, `samples vs their labels: AUC ${honest.tstr.conditioning.auc}`);
  // Three balanced classes in the held-out set (15 each): the majority rate is 1/3.
  close(honest.tstr.majority_accuracy, 1 / 3, 1e-12, 'majority');
  const a = honest.tstr.augmentation;
  assert.deepEqual([a.n_real, a.n_synthetic], [90, 45]);
  assert.ok(
    a.real_only.accuracy > 0.95 && a.real_plus_synthetic.accuracy > 0.95,
    `real ${a.real_only.accuracy}, real + synthetic ${a.real_plus_synthetic.accuracy}`,
  );

  const shifted = await evaluateModel(
    { ...inputs, model: new LabelledStandIn(tinyModelConfig('cvae', SIZE), bandImages(60, SIZE, 4), 1) },
    options,
  );
  assert.ok(shifted.tstr);
  assert.ok(shifted.tstr.tstr.accuracy < 0.05, `TSTR accuracy with every sample of the next class ${shifted.tstr.tstr.accuracy}`);
  assert.ok((shifted.tstr.conditioning.accuracy ?? 1) < 0.05, `samples vs their labels: accuracy ${shifted.tstr.conditioning.accuracy}`);
});

test('kernel distance over n <= subset size images per side is computed once, without an error bar', async () => {
  const train = bandImages(60, SIZE, 2);
  const model = new StandInModel(tinyModelConfig('vae', SIZE), 0, bandImages(20, SIZE, 4));
  const m = await evaluateModel(
    { model, train, trainData: BANDS, trainMean: pixelMean(train), heldOut: bandImages(20, SIZE, 3), heldOutSplit: 'test' },
    { ...QUICK, n: 20, seed: 1, kidSubsetSize: 100, featureCacheDir: sharedCache },
  );
  for (const k of [m.sample_quality.kernel_distance, m.sample_quality.reference_kernel_distance]) {
    assert.equal(k.std_error, null);
    assert.equal(k.subsets, 1);
    assert.equal(k.subset_size, 20);
  }
});

// Memorisation (the file's header): the memoriser's and the control's training.
const STEPS = 200;
const BATCH = 16;

/** A VAE trained for STEPS steps on `n` noisy band images, cycling through them BATCH at a time. */
function trainedOn(n: number): { model: VaeModel; data: ReturnType<typeof bandImages> } {
  const model = createModel({ ...tinyModelConfig('vae', SIZE), latent_dim: 16, hidden_dims: [8, 16], kld_weight: 1e-3 }, 1);
  const data = bandImages(n, SIZE, 100 + n, 0.4);
  const optimizers = createOptimizers(model, { ...DEFAULT_CONFIG.train, lr: 1e-2 });
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
      { n: 16, seed: 1, recipe: { steps: 10, batchSize: 16, lr: 1e-2 }, kidSubsets: 2, kidSubsetSize: 16 },
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
