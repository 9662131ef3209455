// The explorer's computations in Node, without a browser: a conditional model's weights travel
// through the exported form (specs + base64) into a model the page builds; its class-picked grid
// is `medvae sample --label`'s with the default sampler (the checkpoint's per-class latent density,
// picked by sampler.json), and with the prior when that is picked; its temperature scales the latent
// draw; a run without a density gets the prior and the page says so; its imputation keeps the
// visible pixels; percentiles and quantiles against hand-computed cases; the page's class picker
// escapes class names. (test/process/web-explorer.test.ts runs the real page in Chromium.)
import { before, test } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import assert from 'node:assert/strict';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG, type ModelConfig } from '../../src/config/schema.ts';
import { sample } from '../../src/generate/sample.ts';
import { createModel } from '../../src/models/index.ts';
import { fitLatentDensity, normalFrom, type EncodedLatents } from '../../src/models/latent-density.ts';
import type { LoadedRun } from '../../src/run/checkpoint.ts';
import { denormalize } from '../../src/run/pixels.ts';
import { writeSamplerChoice } from '../../src/run/sampler-choice.ts';
import { networkArtifacts, siteDensity } from '../../src/web/export-site.ts';
import { pageHtml } from '../../src/web/page-html.ts';
import { buildModel, Explorer } from '../../src/web/page/explorer.ts';
import { percentileOf, quantileOf, SITE_FORMAT, SITE_VERSION, type SiteBundle } from '../../src/web/site-data.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  name: 'cvae',
  image_size: 16,
  in_channels: 3,
  latent_dim: 4,
  hidden_dims: [4, 8],
  num_classes: 3,
};
const SIZE = 16 * 16 * 3;

before(() => initBackend('cpu'));

/** A run of `model` as loadRun gives it: step 2, in its own folder, with `density` (or none). */
function runOf(model: ReturnType<typeof createModel>, density?: LoadedRun['latentDensity']): LoadedRun {
  return {
    config: { ...DEFAULT_CONFIG, model: MODEL },
    model,
    runDir: tempDir('medvae-web-unit-'),
    checkpoint: 'step-0000002',
    state: { step: 2 } as LoadedRun['state'],
    latentDensity: density,
  };
}

/** A per-class density over the 4-dimensional latent: each class's codes in two clusters around its own centre. */
function classDensity(): NonNullable<LoadedRun['latentDensity']> {
  const normal = normalFrom(mulberry32(4));
  const encoded = (n: number): EncodedLatents => {
    const classes = Int32Array.from({ length: n }, (_, i) => i % 3);
    const means = Float32Array.from({ length: n * 4 }, (_, k) => {
      const i = Math.floor(k / 4);
      return 3 * (classes[i]! - 1) + ((i >> 2) % 2 ? 1.5 : -1.5) + 0.3 * normal();
    });
    return { n, dim: 4, means, variances: new Float32Array(n * 4).fill(0.01), classes, categories: new Int32Array(0), categoryCounts: [] };
  };
  return fitLatentDensity(encoded(96), encoded(24), { step: 2, seed: 0, classCount: 3 });
}

async function siteOf(model: ReturnType<typeof createModel>, classNames: string[], run = runOf(model)): Promise<SiteBundle> {
  const weights = async (name: string): Promise<SiteBundle['weights']['encoder']> => {
    const { specs, weights: bytes } = await networkArtifacts(model.networks[name]!);
    return { specs, base64: Buffer.from(bytes).toString('base64') };
  };
  return {
    format: SITE_FORMAT,
    version: SITE_VERSION,
    model: MODEL,
    seed: 99,
    labelWidth: 3,
    classNames,
    resize: 'bilinear',
    ...siteDensity(run),
    decoderSigma: 0.3,
    sigmaFittedOn: '8 images of tiny.npz[val]',
    reference: { description: 'tiny.npz[train]', negElbo: [1, 2, 3, 4], reconMse: [0.1, 0.2], seed: 0 },
    imputation: { method: 'mwg', iterations: 3, chains: 2, cliIterations: 20 },
    card: {
      run: 'r',
      checkpoint: 'step-0000002',
      dataset: 'tiny.npz[train]',
      trainingImages: 48,
      trainingSteps: 2,
      parameters: model.paramCount(),
      exportedAt: '2026-01-01 00:00 UTC',
      evaluation: null,
    },
    weights: { encoder: await weights('encoder'), decoder: await weights('decoder') },
  };
}

test('the page builds the exported model: a class-picked grid is medvae sample --label with the default sampler, temperature scales the draw', async () => {
  // Seed 7 for the weights; the page builds with seed 99 and must still end up with the exported ones.
  const trained = createModel(MODEL, 7, 3);
  const run = runOf(trained, classDensity());
  // `medvae eval` chose the mixture for these weights: sample's default, and the page's.
  const frechet = { prior: 9, gaussian: 8, mixture: 7 };
  writeSamplerChoice(run.runDir, { format: 'medvae-sampler', version: 1, step: 2, sampler: 'mixture', split: 'val', frechet });
  const site = await siteOf(trained, ['normal', 'mild', 'severe'], run);
  assert.deepEqual(site.sampling, { sampler: 'mixture', basis: 'evaluation', split: 'val', samplers: ['prior', 'gaussian', 'mixture'] });
  assert.equal(site.density, run.latentDensity);
  const explorer = new Explorer(site, buildModel(site), site.density);
  const cli = await sample(run, { n: 6, seed: 5, label: 2 });
  assert.equal(cli.sampler, 'mixture');
  const page = await explorer.sample(6, 5, 1, 2);
  assert.deepEqual(Array.from(page, denormalize), Array.from(cli.pixels));
  // Classes in turn when none is picked, as the CLI; and the prior when the viewer picks it.
  assert.deepEqual(Array.from(await explorer.sample(3, 5, 1), denormalize), Array.from((await sample(run, { n: 3, seed: 5 })).pixels));
  const prior = await explorer.sample(3, 5, 1, undefined, 'prior');
  assert.deepEqual(Array.from(prior, denormalize), Array.from((await sample(run, { n: 3, seed: 5, latent: 'prior' })).pixels));
  assert.notDeepEqual(Array.from(prior, denormalize), Array.from((await sample(run, { n: 3, seed: 5 })).pixels));
  // Temperature 0 puts every latent at its component's mean: with the one-Gaussian density (and
  // with the prior), one image per class, repeated; the draw at temperature 1 varies.
  for (const sampler of ['gaussian', 'prior'] as const) {
    const cold = await explorer.sample(4, 5, 0, 1, sampler);
    for (let k = 1; k < 4; k++) assert.deepEqual(cold.subarray(k * SIZE, (k + 1) * SIZE), cold.subarray(0, SIZE), sampler);
  }
  assert.notDeepEqual(page.subarray(0, SIZE), page.subarray(SIZE, 2 * SIZE));
  // The page names the sampler in words, the default picked.
  const html = pageHtml(site);
  assert.match(html, /<option value="mixture" selected>fitted to the training images: Gaussian mixture \(default\)<\/option>/);
  assert.match(
    html,
    /codes picked at random from a mixture of bell-shaped clouds \(Gaussians\) fitted to the codes of the training images.* came closest to real images/,
  );
  trained.dispose();
  explorer.model.dispose();
});

test('a run without a latent density: the page samples the prior as medvae sample does, offers nothing else, and says why', async () => {
  const model = createModel(MODEL, 7, 3);
  const run = runOf(model);
  const site = await siteOf(model, [], run);
  assert.deepEqual(site.sampling, { sampler: 'prior', basis: 'no-density', samplers: ['prior'] });
  assert.equal(site.density, null);
  const explorer = new Explorer(site, buildModel(site), site.density);
  const cli = await sample(run, { n: 2, seed: 1 });
  assert.equal(cli.sampler, 'prior');
  assert.deepEqual(Array.from(await explorer.sample(2, 1, 1), denormalize), Array.from(cli.pixels));
  await assert.rejects(explorer.sample(2, 1, 1, undefined, 'gaussian'), /no fitted density/);
  const html = pageHtml(site);
  assert.match(
    html,
    /<select id="sampler" disabled><option value="prior" selected>standard prior \(built into the model\) \(default\)<\/option><\/select>/,
  );
  assert.match(
    html,
    /saved before checkpoints kept a density fitted to the training images, so its samples can only come from the standard prior/,
  );
  model.dispose();
  explorer.model.dispose();
});

test('a dropped image is scored, interpolated from and filled in; visible pixels stay exactly as they were', async () => {
  const model = createModel(MODEL, 3, 3);
  const site = await siteOf(model, []);
  const explorer = new Explorer(site, buildModel(site), site.density);
  // A 20 x 10 RGBA picture: centre-cropped to 10 x 10, resized to 16 x 16.
  const rgba = new Uint8ClampedArray(20 * 10 * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 37) % 256));
  const image = explorer.prepare(rgba, 20, 10);
  assert.equal(image.length, SIZE);
  assert.ok(image.every((v) => v >= -1 && v <= 1));
  const analysis = await explorer.analyse(image, 0);
  assert.ok(Number.isFinite(analysis.negElbo) && analysis.reconstruction.length === SIZE);
  assert.equal(analysis.percentile, percentileOf(site.reference.negElbo, analysis.negElbo));
  // The strip starts at the image's reconstruction (the decoded posterior mean), with the class asked for.
  const strip = await explorer.interpolate(image, explorer.prepare(rgba.reverse(), 20, 10), 5, 1);
  assert.equal(strip.length, 5 * SIZE);
  const start = tf.tidy(() => explorer.model.reconstruct(tf.tensor4d(image, [1, 16, 16, 3]), tf.tensor2d([[0, 1, 0]])));
  const expected = await start.data();
  start.dispose();
  for (let i = 0; i < SIZE; i++) assert.ok(Math.abs(strip[i]! - expected[i]!) < 1e-5);
  const mask = new Uint8Array(16 * 16);
  mask.fill(1, 6 * 16, 10 * 16);
  const { imputed, harmonic, acceptance } = await explorer.impute(image, mask, 0);
  for (let p = 0; p < 16 * 16; p++) {
    const values = imputed.subarray(p * 3, p * 3 + 3);
    if (mask[p] === 0) assert.deepEqual(values, image.subarray(p * 3, p * 3 + 3));
  }
  assert.equal(harmonic.length, SIZE);
  assert.ok(acceptance >= 0 && acceptance <= 1);
  model.dispose();
  explorer.model.dispose();
});

test('percentiles count ties as half; quantiles interpolate', () => {
  assert.equal(percentileOf([1, 2, 3, 4], 2.5), 50);
  assert.equal(percentileOf([1, 2, 3, 4], 2), 37.5);
  assert.equal(percentileOf([1, 2, 3, 4], 0), 0);
  assert.equal(percentileOf([1, 2, 3, 4], 9), 100);
  assert.ok(Number.isNaN(percentileOf([], 1)));
  assert.equal(quantileOf([1, 2, 3, 5], 0.5), 2.5);
  assert.equal(quantileOf([1, 2, 3, 5], 1), 5);
  assert.equal(quantileOf([10], 0.95), 10);
});

test('the page lists the classes to pick, escaped, and says when a model was never evaluated', async () => {
  const model = createModel(MODEL, 1, 3);
  const html = pageHtml(await siteOf(model, ['<b>normal</b>', 'mild', 'severe']));
  model.dispose();
  assert.ok(!html.includes('<b>normal</b>'));
  assert.match(
    html,
    /<select id="sample-class"><option value="">all classes in turn<\/option><option value="0">&lt;b&gt;normal&lt;\/b&gt;<\/option><option value="1">mild<\/option><option value="2">severe<\/option><\/select>/,
  );
  assert.match(html, /has not been evaluated yet/);
  assert.match(html, /SYNTHETIC/);
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html));
});
