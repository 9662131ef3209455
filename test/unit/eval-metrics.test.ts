// Evaluation end to end on tiny images: closed-form reconstruction numbers from a stand-in model,
// sample-quality ordering, determinism and the feature-net cache with a real (untrained) CVAE, and
// the default sampler chosen on the validation images (as run-eval.ts reads them), not on the held-out ones.
//
// The privacy numbers flag a model that memorised its training images. A small VAE (16x16 grey,
// latent 16, KL weight 1e-3) trained for 100 steps on 16 noisy band images learns their noise by
// heart; the same model and steps on 512 such images cannot, and generalises. Held-out images come
// from the same distribution. The memoriser's -ELBO and reconstruction error tell its training
// images from held-out ones (AUROC near 1) and its fitted-latent samples land on training images;
// the control's numbers stay near chance.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { psnrOf, reconstructionBaselines, reconstructionMetrics } from '../../src/eval/reconstruction.ts';
import { evaluateModel, type EvalMetrics, type EvalOptions } from '../../src/eval/evaluate.ts';
import { classifierScores, majorityAccuracy } from '../../src/eval/utility.ts';
import { DEFAULT_CONFIG, type DataConfig, type ExperimentConfig, type ModelName } from '../../src/config/schema.ts';
import type { VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients } from '../../src/train/step.ts';
import { mulberry32, stepNoise, Stream } from '../../src/util/rng.ts';
import { loadCachedClassifier, type FeatureNetData } from '../../src/eval/feature-cache.ts';
import { FEATURE_DIM } from '../../src/eval/feature-net.ts';
import { frechetDistance, gaussianStats } from '../../src/eval/frechet.ts';
import { pixelMean, type LabelledImages } from '../../src/eval/images.ts';
import { fitLatentDensityOf } from '../../src/eval/latent-fit.ts';
import { heldOutIndices, readValidationImages } from '../../src/eval/run-eval.ts';
import { bestByFrechet } from '../../src/run/sampler-choice.ts';
import { patternPixels, rgbSplit, writeNpz } from '../helpers/data-fixtures.ts';
import { bandImages, LabelledStandIn, multiBandImages, StandInModel, tinyModelConfig, unlabelled } from '../helpers/eval-helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';

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
// Classifiers (feature net and TSTR's) of 10 steps at batch 8: the bands separate within a few
// epochs (every threshold below holds by a wide margin at 10; each classifier costs its steps).
const QUICK: Omit<EvalOptions, 'n' | 'seed'> = {
  recipe: { steps: 10, batchSize: 8, lr: 1e-2 },
  kidSubsets: 5,
  kidSubsetSize: 20,
  utilitySeeds: 2,
};
// 5 steps where the only classifier threshold is TRTR's AUC > 0.9 (1 at 5 steps): eight TSTR classifiers per conditional eval.
const QUICKER: Omit<EvalOptions, 'n' | 'seed'> = { ...QUICK, recipe: { steps: 5, batchSize: 16, lr: 1e-2 } };

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
  const missing = "the image folder has no 'val' sub-folder";
  const lines: string[] = [];
  const bad = await evaluateModel(
    { ...inputs, model: collapsed, validation: { split: 'val', missing } },
    { ...QUICK, n: 60, seed: 1, featureCacheDir: sharedCache, log: (line) => void lines.push(line) },
  );
  assert.ok(
    lines.some((l) => l.startsWith(`eval: default sampler prior, chosen on split 'test' (${missing};`)),
    lines.join('\n'),
  );
  // Without validation images the held-out split chooses the default sampler, and the record says why.
  for (const [m, fallback] of [
    [good, 'no validation images were given'],
    [bad, missing],
  ] as const) {
    const frechet = { prior: m.sample_quality.frechet_distance, gaussian: null, mixture: null };
    assert.deepEqual(m.sampler, { default: 'prior', chosen_on: 'test', fallback, n_chosen_on: 60, frechet_chosen_on: frechet, frechet });
  }
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
        return await evaluateModel({ ...inputs, model }, { ...QUICKER, n: 24, seed: 9, featureCacheDir: cacheDir });
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
    const m = first;
    for (const v of [m.reconstruction.nelbo, m.reconstruction.ms_ssim, m.sample_quality.frechet_distance, m.diversity.ms_ssim_generated])
      assert.ok(Number.isFinite(v), `cvae: ${v}`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

// The CVAE's finite numbers and TSTR: the determinism test above.
test('every unconditional model kind evaluates to finite numbers, without TSTR; another seed gives other sample numbers', async () => {
  const train = bandImages(60, SIZE, 2);
  const inputs = { train, trainData: BANDS, trainMean: pixelMean(train), heldOut: bandImages(12, SIZE, 3), heldOutSplit: 'test' };
  const evaluateKind = async (kind: ModelName, seed: number): Promise<EvalMetrics> => {
    const model = createModel(tinyModelConfig(kind, SIZE), 5, 3);
    try {
      return await evaluateModel({ ...inputs, model }, { ...QUICK, n: 12, seed, featureCacheDir: sharedCache });
    } finally {
      model.dispose();
    }
  };
  const frechet = new Map<ModelName, number>();
  for (const kind of ['vae', 'beta_vae', 'mssim_vae', 'joint_vae', 'vae_gan'] as const) {
    const m = await evaluateKind(kind, 1);
    for (const v of [m.reconstruction.nelbo, m.reconstruction.ms_ssim, m.sample_quality.frechet_distance, m.diversity.ms_ssim_generated])
      assert.ok(Number.isFinite(v), `${kind}: ${v}`);
    assert.equal(m.tstr, null, `${kind}: TSTR only for the conditional model`);
    frechet.set(kind, m.sample_quality.frechet_distance);
  }
  // The same weights evaluated with another seed: other draws, another feature net.
  assert.notEqual((await evaluateKind('vae', 3)).sample_quality.frechet_distance, frechet.get('vae'));
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
      { ...QUICKER, n: 24, seed: 1 },
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

/** n grey images of the constant `value` plus seeded uniform noise of amplitude `noise`, with bandImages' labels. */
test('training reconstructions: a decoder that returns its input scores real vs real; a constant one far worse', async () => {
  // As many held-out as training images: the members whose reconstructions are scored and the
  // reference's real training images are then the same 40 images, so an identity decoder's numbers
  // are the reference's exactly (Fréchet, precision and recall do not depend on the order of rows).
  const train = bandImages(40, SIZE, 2);
  const heldOut = bandImages(40, SIZE, 3);
  class IdentityDecoder extends StandInModel {
    override reconstruct(images: tf.Tensor4D): tf.Tensor4D {
      return images.clone();
    }
  }
  const config = tinyModelConfig('vae', SIZE);
  const scored = async (model: VaeModel): Promise<EvalMetrics> =>
    await evaluateModel(
      {
        model,
        train,
        trainData: BANDS,
        trainMean: pixelMean(train),
        latentFitImages: train,
        latentDensity: await fitLatentDensityOf(model, bandImages(8, SIZE, 6), undefined, 0, 1),
        heldOut,
        heldOutSplit: 'test',
      },
      { ...QUICK, n: 40, seed: 1, featureCacheDir: sharedCache },
    );
  const before = tf.memory().numTensors;
  const identity = await scored(new IdentityDecoder(config, 0, bandImages(40, SIZE, 4)));
  const constant = await scored(new StandInModel(config, 0.4, bandImages(40, SIZE, 4)));
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  const exact = identity.training_reconstructions;
  assert.ok(exact, 'training reconstructions are scored when training images are given');
  assert.equal(exact.n, 40);
  const q = exact.sample_quality;
  close(q.frechet_distance, q.reference_frechet_distance, 1e-6 * Math.max(1, q.reference_frechet_distance), 'identity Fréchet');
  assert.deepEqual(q.precision_recall, q.reference_precision_recall);
  const flat = constant.training_reconstructions?.sample_quality;
  assert.ok(flat, 'scored for the constant decoder too');
  assert.ok(
    flat.frechet_distance > 10 * flat.reference_frechet_distance,
    `constant decoder: ${flat.frechet_distance} vs ${flat.reference_frechet_distance}`,
  );
  assert.ok(flat.precision_recall.recall < 0.2, `one grey image covers no held-out image: ${JSON.stringify(flat.precision_recall)}`);
});

function flatImages(n: number, value: number, noise: number, seed: number): LabelledImages {
  const data = bandImages(n, SIZE, seed, 0);
  const random = mulberry32(seed);
  for (let i = 0; i < data.images.length; i++) data.images[i] = value + noise * (2 * random() - 1);
  return data;
}

test('the default sampler is the one closest to the validation images, not to the held-out ones', async (t) => {
  // Prior draws are band images (the pool, in order); the density's draws decode to mid-grey. The
  // held-out images are bands, the validation images near-grey: each split favours another sampler.
  const n = 24;
  const pool = bandImages(n, SIZE, 4);
  const model = new StandInModel(tinyModelConfig('vae', SIZE), 0, pool, 4);
  const train = bandImages(60, SIZE, 2);
  const heldOut = bandImages(n, SIZE, 3);
  const validation = flatImages(n, 0, 0.05, 5);
  const inputs = {
    model,
    train,
    trainData: BANDS,
    trainMean: pixelMean(train),
    latentDensity: await fitLatentDensityOf(model, bandImages(8, SIZE, 6), undefined, 0, 1),
    heldOut,
    heldOutSplit: 'test',
  };
  const options: EvalOptions = { ...QUICK, n, seed: 1, featureCacheDir: sharedCache };
  const lines: string[] = [];
  const m = await evaluateModel(
    { ...inputs, validation: { split: 'val', images: validation } },
    { ...options, log: (line) => void lines.push(line) },
  );
  const s = m.sampler;
  assert.ok(s);
  t.diagnostic(`sampler ${JSON.stringify(s)}`);

  // The distances again, from the feature net eval used (cached) and the draws rebuilt here.
  const key = {
    ...BANDS,
    imageSize: SIZE,
    channels: 1 as const,
    task: { kind: 'class' as const, width: 3 },
    recipe: QUICK.recipe!,
    seed: options.seed,
  };
  const net = await loadCachedClassifier(sharedCache, key);
  assert.ok(net, 'the feature net is cached');
  const stats = async (data: LabelledImages): Promise<ReturnType<typeof gaussianStats>> =>
    gaussianStats(await net.features(data), data.n, FEATURE_DIM);
  const [valStats, testStats, priorStats, greyStats] = await Promise.all(
    [validation, heldOut, pool, flatImages(n, 0, 0, 7)].map(async (d) => await stats(d)),
  );
  net.dispose();
  const expected = (real: typeof valStats): Record<'prior' | 'gaussian' | 'mixture', number> => {
    const grey = frechetDistance(real, greyStats);
    return { prior: frechetDistance(real, priorStats), gaussian: grey, mixture: grey };
  };
  for (const [got, want, split] of [
    [s.frechet_chosen_on, expected(valStats), 'val'],
    [s.frechet, expected(testStats), 'test'],
  ] as const)
    for (const sampler of ['prior', 'gaussian', 'mixture'] as const)
      close(got[sampler] ?? NaN, want[sampler], 1e-4 * Math.max(1, want[sampler]), `${split} ${sampler}`);
  assert.equal(s.frechet.prior, m.sample_quality.frechet_distance);
  assert.equal(s.frechet.gaussian, m.fitted_posterior?.sample_quality.frechet_distance);

  // On the test images the prior is closest; on the validation images the density's draws are, and they are the default.
  assert.equal(bestByFrechet(s.frechet), 'prior', JSON.stringify(s));
  assert.equal(s.default, bestByFrechet(s.frechet_chosen_on));
  assert.notEqual(s.default, 'prior', JSON.stringify(s));
  assert.deepEqual([s.chosen_on, s.fallback, s.n_chosen_on], ['val', null, n]);
  assert.ok(
    lines.some((l) =>
      l.startsWith(`eval: default sampler ${s.default}, chosen on split 'val': the lowest Fréchet feature distance to its ${n} images`),
    ),
    lines.join('\n'),
  );

  // Evaluated on the validation split itself: those images choose directly, by the same distances.
  const onVal = await evaluateModel(
    { ...inputs, heldOut: validation, heldOutSplit: 'val', validation: { split: 'val', images: validation } },
    options,
  );
  assert.deepEqual(onVal.sampler, { ...s, frechet: s.frechet_chosen_on });
});

// The validation images run-eval.ts reads for that choice: up to n of the config's val_split, the
// seeded subset held-out images get; the held-out images themselves when they are that split; and,
// where the data has no validation split, the reason eval.json records.
const SIDE = 8;
const dir = tempDir('medvae-eval-validation-');

function configOf(data: Pick<DataConfig, 'format' | 'path'>): ExperimentConfig {
  return {
    ...DEFAULT_CONFIG,
    data: { ...DEFAULT_CONFIG.data, ...data },
    model: { ...DEFAULT_CONFIG.model, image_size: SIDE, in_channels: 3 },
  };
}

const heldOut: { split: string; images: LabelledImages } = {
  split: 'test',
  images: { images: new Float32Array(0), labels: new Float32Array(0), n: 0, size: SIDE, channels: 3, labelWidth: 0, labelKind: 'none' },
};

test("up to n of the validation split, the seeded subset held-out images get, read to the model's side", async () => {
  const file = join(dir, 'with-val.npz');
  await writeNpz(file, { train: rgbSplit(4, SIDE, 2), val: rgbSplit(10, SIDE, 2, 7), test: rgbSplit(4, SIDE, 2, 3) }, 'stored');
  const lines: string[] = [];
  const v = await readValidationImages(configOf({ format: 'medmnist', path: file }), heldOut, 6, 2, (l) => void lines.push(l));
  assert.ok('images' in v, JSON.stringify(v));
  assert.equal(v.split, 'val');
  const indices = heldOutIndices(10, 6, 2);
  assert.equal(v.images.n, 6);
  // uint8 v -> v / 127.5 - 1, image by image in the subset's order.
  const raw = patternPixels(10, SIDE, 3, 7);
  const per = SIDE * SIDE * 3;
  const expected = indices.flatMap((i) => Array.from(raw.subarray(i * per, (i + 1) * per), (x) => x / 127.5 - 1));
  assert.deepEqual(
    Array.from(v.images.images, (x) => Math.round(x * 1e5)),
    expected.map((x) => Math.round(x * 1e5)),
  );
  // Class i % 2, one-hot.
  assert.deepEqual(
    Array.from(v.images.labels),
    indices.flatMap((i) => (i % 2 === 0 ? [1, 0] : [0, 1])),
  );
  assert.match(lines.join('\n'), /reading 6 images of .*with-val\.npz\[val\] to choose the default sampler on/);

  // All of them when n is larger; the held-out images as they are when the eval split is the validation split.
  const all = await readValidationImages(configOf({ format: 'medmnist', path: file }), heldOut, 50, 2, () => undefined);
  assert.equal('images' in all && all.images.n, 10);
  const onVal = { ...heldOut, split: 'val' };
  assert.deepEqual(await readValidationImages(configOf({ format: 'medmnist', path: '/nonexistent' }), onVal, 6, 2, () => undefined), onVal);
});

test('no validation split: a missing or empty one, an image folder without its sub-folder', async () => {
  const none = async (data: Pick<DataConfig, 'format' | 'path'>): Promise<string> => {
    const v = await readValidationImages(configOf(data), heldOut, 6, 2, () => undefined);
    assert.ok('missing' in v, JSON.stringify(v));
    assert.equal(v.split, 'val');
    return v.missing;
  };
  const noVal = join(dir, 'no-val.npz');
  await writeNpz(noVal, { train: rgbSplit(4, SIDE, 2), test: rgbSplit(4, SIDE, 2) }, 'stored');
  assert.match(await none({ format: 'medmnist', path: noVal }), /^no validation split 'val' \(.*no split 'val'/);
  const emptyVal = join(dir, 'empty-val.npz');
  await writeNpz(emptyVal, { train: rgbSplit(4, SIDE, 2), val: rgbSplit(0, SIDE, 2), test: rgbSplit(4, SIDE, 2) }, 'stored');
  assert.equal(await none({ format: 'medmnist', path: emptyVal }), "validation split 'val' has 0 images");

  // A folder without val/ serves its root, the training images, for every split.
  const folder = join(dir, 'folder');
  const png = await sharp(Buffer.from(patternPixels(1, SIDE, 3)), { raw: { width: SIDE, height: SIDE, channels: 3 } })
    .png()
    .toBuffer();
  for (const path of ['train/a/0.png', 'train/b/1.png']) {
    mkdirSync(join(folder, path, '..'), { recursive: true });
    writeFileSync(join(folder, path), png);
  }
  assert.equal(await none({ format: 'folder', path: folder }), "the image folder has no 'val' sub-folder");
  // With one, its images are read.
  for (const path of ['val/a/0.png', 'val/b/1.png']) {
    mkdirSync(join(folder, path, '..'), { recursive: true });
    writeFileSync(join(folder, path), png);
  }
  const v = await readValidationImages(configOf({ format: 'folder', path: folder }), heldOut, 6, 2, () => undefined);
  assert.ok('images' in v);
  assert.deepEqual([v.images.n, v.images.labelWidth], [2, 2]);
});

// Memorisation (the file's header): the memoriser's and the control's training.
const STEPS = 100;
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
