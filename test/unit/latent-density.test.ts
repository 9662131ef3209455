// The latent density and what samples from it: the density against hand-computed cases (moments,
// EM, the mixture size, per-class and categorical parts, temperature, a JSON round trip), the
// density each checkpoint carries and the sampler `medvae sample` picks by default, and the web
// explorer's computations in Node. One process for all, as a process costs about a second to start:
// each describe block below sets the TF.js backend it computes on itself and keeps its state to
// itself.
import assert from 'node:assert/strict';
import { before, describe, it, test } from 'node:test';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  chooseMixture,
  drawLatents,
  type EncodedLatents,
  fitLatentDensity,
  fitMixture,
  LATENT_DENSITY_FILE,
  type LatentDensity,
  LatentDensityError,
  latentDensityToJson,
  type MixtureComponent,
  normalFrom,
  parseLatentDensity,
} from '../../src/models/latent-density.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { loadConfig } from '../../src/config/load.ts';
import { train } from '../../src/train/trainer.ts';
import type { Progress } from '../../src/run/progress.ts';
import { type LoadedRun, loadRun } from '../../src/run/checkpoint.ts';
import { verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';
import { writeSamplerChoice } from '../../src/run/sampler-choice.ts';
import { sample } from '../../src/generate/sample.ts';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG, type ModelConfig } from '../../src/config/schema.ts';
import { createModel } from '../../src/models/index.ts';
import { denormalize } from '../../src/run/pixels.ts';
import { networkArtifacts, siteDensity } from '../../src/web/export-site.ts';
import { pageHtml } from '../../src/web/page-html.ts';
import { buildModel, Explorer } from '../../src/web/page/explorer.ts';
import { percentileOf, quantileOf, SITE_FORMAT, SITE_VERSION, type SiteBundle } from '../../src/web/site-data.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('latent-density: the density against hand-computed cases', () => {
  // The latent density (src/models/latent-density.ts) against hand-computed cases: the Gaussian's
  // moments, EM on two well-separated clusters, the mixture size chosen on held-out points, per-class
  // and categorical parts, the moments of draws, the temperature of a draw, and an exact JSON round trip.

  function latents(
    means: number[][],
    variance = 0,
    classes?: number[],
    categories?: { counts: number[]; rows: number[][] },
  ): EncodedLatents {
    const dim = means[0]!.length;
    return {
      n: means.length,
      dim,
      means: Float32Array.from(means.flat()),
      variances: new Float32Array(means.length * dim).fill(variance),
      classes: Int32Array.from(classes ?? means.map(() => -1)),
      categories: Int32Array.from(categories?.rows.flat() ?? []),
      categoryCounts: categories?.counts ?? [],
    };
  }

  /** n points: a share `weight` around centre a, the rest around centre b, each N(centre, sigma^2 I). */
  function twoClusters(n: number, a: number[], b: number[], weight: number, sigma: number, seed: number): number[][] {
    const normal = normalFrom(mulberry32(seed));
    return Array.from({ length: n }, (_, i) => (i < weight * n ? a : b).map((c) => c + sigma * normal()));
  }

  /** No validation images. */
  const none = (dim: number): EncodedLatents => ({
    ...latents([new Array<number>(dim).fill(0)]),
    n: 0,
    means: new Float32Array(0),
    variances: new Float32Array(0),
  });

  const all = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

  /** Covariance entry (i, j) of a component: (L L^T)_ij. */
  function covariance(c: MixtureComponent, i: number, j: number): number {
    const d = c.mean.length;
    let s = 0;
    for (let k = 0; k < d; k++) s += c.cholesky[i * d + k]! * c.cholesky[j * d + k]!;
    return s;
  }

  describe('latent density', () => {
    it('one component: mean of the means, their covariance plus the mean posterior variance', () => {
      // Means (0,0), (2,0), (0,2), variance 1: mean (2/3, 2/3); covariance [[8/9, -4/9], [-4/9, 8/9]] + I.
      const [g] = fitMixture(
        latents(
          [
            [0, 0],
            [2, 0],
            [0, 2],
          ],
          1,
        ),
        all(3),
        1,
        0,
      );
      assert.ok(g);
      assert.equal(g.weight, 1);
      g.mean.forEach((m) => assert.ok(Math.abs(m - 2 / 3) < 1e-6));
      assert.ok(Math.abs(covariance(g, 0, 0) - 17 / 9) < 1e-6);
      assert.ok(Math.abs(covariance(g, 1, 1) - 17 / 9) < 1e-6);
      assert.ok(Math.abs(covariance(g, 0, 1) + 4 / 9) < 1e-6);
    });

    it('EM recovers two well-separated clusters: means and weights', () => {
      const points = twoClusters(400, [-5, 0, 1], [5, 0, -1], 0.3, 0.5, 1);
      const mixture = fitMixture(latents(points), all(400), 2, 7).sort((p, q) => p.mean[0]! - q.mean[0]!);
      assert.equal(mixture.length, 2);
      assert.ok(Math.abs(mixture[0]!.weight - 0.3) < 1e-9, `weight ${mixture[0]!.weight}`);
      [
        [-5, 0, 1],
        [5, 0, -1],
      ].forEach((centre, k) =>
        centre.forEach((c, j) => assert.ok(Math.abs(mixture[k]!.mean[j]! - c) < 0.15, `component ${k} mean ${mixture[k]!.mean}`)),
      );
      assert.ok(Math.abs(covariance(mixture[1]!, 0, 0) - 0.25) < 0.06);
    });

    it('chooses the number of components by held-out log-likelihood', () => {
      const train = latents(twoClusters(300, [-6, 0], [6, 0], 0.5, 1, 2));
      const held = latents(twoClusters(200, [-6, 0], [6, 0], 0.5, 1, 3));
      assert.equal(chooseMixture(train, all(300), held, all(200), 0).mixture.length, 2);
      const one = latents(twoClusters(300, [0, 0], [0, 0], 0.5, 1, 4));
      const oneHeld = latents(twoClusters(200, [0, 0], [0, 0], 0.5, 1, 5));
      assert.equal(chooseMixture(one, all(300), oneHeld, all(200), 0).mixture.length, 1);
    });

    it("draws have the fitted Gaussian's mean and covariance", () => {
      // Means (-1, 0), (1, 0), (0, 3), (0, -3) with variance 0.5: mean 0, covariance diag(0.5 + 0.5, 4.5 + 0.5).
      const density = fitLatentDensity(
        latents(
          [
            [-1, 0],
            [1, 0],
            [0, 3],
            [0, -3],
          ],
          0.5,
        ),
        none(2),
        { step: 3, seed: 0, classCount: 0 },
      );
      const n = 20000;
      const z = drawLatents(density, 'gaussian', new Float32Array(0), 0, n, mulberry32(9));
      const mean = [0, 1].map((j) => z.filter((_, k) => k % 2 === j).reduce((s, v) => s + v, 0) / n);
      const second = (a: number, b: number): number => {
        let s = 0;
        for (let i = 0; i < n; i++) s += (z[2 * i + a]! - mean[a]!) * (z[2 * i + b]! - mean[b]!);
        return s / n;
      };
      mean.forEach((m) => assert.ok(Math.abs(m) < 0.05, `mean ${mean}`));
      assert.ok(Math.abs(second(0, 0) - 1) < 0.05, `var ${second(0, 0)}`);
      assert.ok(Math.abs(second(1, 1) - 5) < 0.2, `var ${second(1, 1)}`);
      assert.ok(Math.abs(second(0, 1)) < 0.1);
      assert.equal(density.preferred, 'gaussian');
      assert.deepEqual(density.heldOutLogLikelihood, { prior: null, gaussian: null, mixture: null });
    });

    it('fits per class, the pooled fit standing in for a rare class; categories by their frequencies', () => {
      const means = [
        [10, 10],
        [11, 10],
        [10, 11],
        [-10, -10],
        [-11, -10],
        [0, 0],
      ];
      const train = latents(means, 0.1, [0, 0, 0, 1, 1, 2], { counts: [2], rows: [[0], [1], [1], [1], [1], [1]] });
      const density = fitLatentDensity(train, latents([[10, 10]], 0.1, [0]), { step: 1, seed: 0, classCount: 3 });
      assert.equal(density.gaussian.perClass[2], null);
      assert.ok(density.gaussian.perClass[0]);
      assert.ok(Math.abs(density.gaussian.perClass[0][0]!.mean[0]! - 31 / 3) < 1e-6);
      assert.deepEqual(
        density.discrete?.map((f) => f.map((v) => Math.round(v * 6))),
        [[1, 5]],
      );
      const oneHot = (c: number): Float32Array => Float32Array.from([0, 1, 2].map((j) => (j === c ? 1 : 0)));
      const fromClass0 = drawLatents(density, 'gaussian', oneHot(0), 3, 1, mulberry32(1));
      assert.equal(fromClass0.length, 4);
      assert.ok(fromClass0[0]! > 5, `class 0 draw ${fromClass0}`);
      // 2000 draws of the rare class come from the pooled fit (mean 0, 10/6 here), their category 1 in 5 of 6.
      const labels = new Float32Array(2000 * 3).map((_, k) => (k % 3 === 2 ? 1 : 0));
      const rare = drawLatents(density, 'gaussian', labels, 3, 2000, mulberry32(2));
      let sum = 0;
      let second = 0;
      for (let i = 0; i < 2000; i++) {
        sum += rare[i * 4]!;
        second += rare[i * 4 + 3]!;
      }
      assert.ok(Math.abs(sum / 2000 - 10 / 6) < 0.5, `pooled mean ${sum / 2000}`);
      assert.ok(Math.abs(second / 2000 - 5 / 6) < 0.03, `category share ${second / 2000}`);
    });

    it('temperature scales each draw around its component mean: T = 0 the means exactly, T = 1 as before, T = 0.5 half the spread', () => {
      // Two components of known means and Cholesky factors, and one categorical latent.
      const density: LatentDensity = {
        format: 'medvae-latent-density',
        version: 1,
        step: 1,
        dim: 2,
        gaussian: { pooled: [{ weight: 1, mean: [1, -2], cholesky: [2, 0, 0.5, 1] }], perClass: [] },
        mixture: {
          pooled: [
            { weight: 0.25, mean: [1, -2], cholesky: [2, 0, 0.5, 1] },
            { weight: 0.75, mean: [-3, 4], cholesky: [0.5, 0, -0.25, 0.75] },
          ],
          perClass: [],
        },
        discrete: [[0.5, 0.5]],
        fitImages: 4,
        validationImages: 0,
        heldOutLogLikelihood: { prior: null, gaussian: null, mixture: null },
        preferred: 'mixture',
      };
      const draw = (count: number, temperature?: number, sampler: 'gaussian' | 'mixture' = 'mixture'): Float32Array =>
        drawLatents(density, sampler, new Float32Array(0), 0, count, mulberry32(11), temperature);
      // T = 1 (and no temperature) is the draw this seed gave before temperatures existed.
      const before = [-3.4383704662323, 4.674962997436523, 0, 1, -0.7554161548614502, -3.6920952796936035, 0, 1];
      before.push(-3.186558246612549, 4.715867519378662, 1, 0);
      assert.deepEqual(Array.from(draw(3)), before);
      assert.deepEqual(draw(3, 1), draw(3));
      // T = 0: every row is its component's mean exactly; the components and categories picked are T = 1's.
      const cold = draw(3, 0);
      assert.deepEqual(Array.from(cold), [-3, 4, 0, 1, 1, -2, 0, 1, -3, 4, 1, 0]);
      // T = 0.5: half the standard deviation of each coordinate (the Gaussian's: 2 and sqrt(0.5^2 + 1)).
      const n = 20000;
      const half = draw(n, 0.5, 'gaussian');
      const width = 4;
      [2, Math.sqrt(1.25)].forEach((sd, j) => {
        let sum = 0;
        let squares = 0;
        for (let i = 0; i < n; i++) {
          sum += half[i * width + j]!;
          squares += half[i * width + j]! ** 2;
        }
        const measured = Math.sqrt(squares / n - (sum / n) ** 2);
        assert.ok(Math.abs(measured / (sd / 2) - 1) < 0.02, `coordinate ${j}: sd ${measured}, expected ${sd / 2}`);
      });
      assert.throws(() => draw(1, -1), /temperature must be a finite number >= 0, got -1/);
    });

    it('round-trips through JSON exactly, and names a bad file', () => {
      const train = latents(twoClusters(64, [-3, 1], [3, -1], 0.5, 0.7, 6), 0.01);
      const density = fitLatentDensity(train, latents(twoClusters(16, [-3, 1], [3, -1], 0.5, 0.7, 8)), { step: 5, seed: 1, classCount: 0 });
      assert.deepEqual(parseLatentDensity(latentDensityToJson(density), 'x.json'), density);
      assert.ok(density.heldOutLogLikelihood.mixture! > density.heldOutLogLikelihood.prior!);
      assert.throws(
        () => parseLatentDensity('{"format":"other"}', 'ckpt/latent-density.json'),
        (e: unknown) => {
          assert.ok(e instanceof LatentDensityError);
          assert.match(e.message, /^ckpt\/latent-density\.json: not a version 1 medvae-latent-density file$/);
          return true;
        },
      );
    });
  });
});

describe('latent-density-checkpoint: the density a checkpoint carries and the sampler sample picks', () => {
  // The latent density a checkpoint carries: fitted by the trainer at each checkpoint, covered by the
  // manifest, loaded by loadRun, and the sampler `sample` chooses by default (with the line saying
  // which): eval's sampler.json for that step, else the density's preference, else the prior.

  let dir: string;
  let data: string;
  before(() => {
    dir = tempDir('medvae-latent-density-');
    data = join(dir, 'tiny.npz');
    writeTinyNpz(data, { train: 32, val: 16, test: 8, size: 16, classes: 3 });
  });
  const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

  test('each checkpoint carries a latent density; sample says which sampler it uses and why', async () => {
    const runDir = join(dir, 'cvae');
    const config = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        'model.name=cvae',
        `data.path=${data}`,
        'model.image_size=16',
        'train.batch_size=8',
        'train.max_steps=3',
        'train.backend=wasm',
        'output.sample_grid=4',
      ],
    });
    const result = await train({ config, runDir, progress: quiet });
    const checkpoint = result.checkpoint;
    const manifest = JSON.parse(readFileSync(join(checkpoint, 'manifest.json'), 'utf8')) as { files: Record<string, unknown> };
    assert.ok(manifest.files[LATENT_DENSITY_FILE], 'the manifest lists the density');
    verifyCheckpoint(checkpoint);
    for (const grid of ['epoch-0001.png', 'epoch-0001-prior.png']) assert.ok(existsSync(join(runDir, 'samples', grid)), grid);

    const run = await loadRun(runDir);
    try {
      const density = run.latentDensity;
      assert.ok(density);
      assert.equal(density.step, 3);
      assert.equal(density.dim, 8);
      assert.equal(density.fitImages, 32);
      assert.equal(density.validationImages, 16);
      assert.equal(density.gaussian.perClass.length, 3);
      assert.ok(density.gaussian.perClass.every((fit) => fit !== null));

      const lines: string[] = [];
      const log = (line: string): void => void lines.push(line);
      const drawn = await sample(run, { n: 6, log });
      assert.equal(drawn.sampler, density.preferred);
      assert.match(lines.join('\n'), new RegExp(`^sampler: ${density.preferred} \\(highest held-out latent log-likelihood`, 'm'));

      writeSamplerChoice(runDir, {
        format: 'medvae-sampler',
        version: 1,
        step: 3,
        sampler: 'mixture',
        split: 'val',
        frechet: { prior: 9, gaussian: 2, mixture: 1 },
      });
      lines.length = 0;
      assert.equal((await sample(run, { n: 2, log })).sampler, 'mixture');
      assert.match(lines[0]!, /^sampler: mixture \(lowest Fréchet feature distance to the val images/);
      assert.equal((await sample(run, { n: 2, latent: 'fitted', log })).sampler, 'gaussian');
    } finally {
      run.model.dispose();
    }

    // A checkpoint from before densities: the prior by default, one line saying why.
    rmSync(join(runDir, 'sampler.json'));
    rmSync(join(checkpoint, LATENT_DENSITY_FILE));
    rmSync(join(checkpoint, 'manifest.json'));
    const old = await loadRun(checkpoint);
    try {
      assert.equal(old.latentDensity, undefined);
      const lines: string[] = [];
      assert.equal((await sample(old, { n: 2, log: (line) => void lines.push(line) })).sampler, 'prior');
      assert.match(lines[0]!, /^sampler: prior \(the checkpoint has no latent density/);
    } finally {
      old.model.dispose();
    }
  });
});

describe("web-explorer: the explorer's computations in Node", () => {
  // The explorer's computations in Node, without a browser: a conditional model's weights travel
  // through the exported form (specs + base64) into a model the page builds; its class-picked grid
  // is `medvae sample --label`'s with the default sampler (the checkpoint's per-class latent density,
  // picked by sampler.json), and with the prior when that is picked; its temperature scales the latent
  // draw; a run without a density gets the prior and the page says so; its imputation keeps the
  // visible pixels; percentiles and quantiles against hand-computed cases; the page's class picker
  // escapes class names. (test/process/web-explorer.test.ts runs the real page in Chromium.)

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
      return {
        n,
        dim: 4,
        means,
        variances: new Float32Array(n * 4).fill(0.01),
        classes,
        categories: new Int32Array(0),
        categoryCounts: [],
      };
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
});
