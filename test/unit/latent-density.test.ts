// The latent density (src/models/latent-density.ts) against hand-computed cases: the Gaussian's
// moments, EM on two well-separated clusters, the mixture size chosen on held-out points, per-class
// and categorical parts, the moments of draws, the temperature of a draw, and an exact JSON round trip.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseMixture,
  drawLatents,
  fitLatentDensity,
  fitMixture,
  latentDensityToJson,
  LatentDensityError,
  normalFrom,
  parseLatentDensity,
  type EncodedLatents,
  type LatentDensity,
  type MixtureComponent,
} from '../../src/models/latent-density.ts';
import { mulberry32 } from '../../src/util/rng.ts';

function latents(means: number[][], variance = 0, classes?: number[], categories?: { counts: number[]; rows: number[][] }): EncodedLatents {
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
