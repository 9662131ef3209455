// Where a Gaussian VAE's odd samples come from: compares the prior N(0, I) that `medvae sample`
// draws from with the aggregate posterior the decoder was trained on (the encoder's means and
// variances over the training split, fitted by one Gaussian as in Ghosh et al. 2020's ex-post
// density estimation), and decodes the same number of draws from each: how many land farther from
// every training image than 95% of training images lie from their nearest neighbour. Prints one JSON line and
// writes two sample grids and the reference grid of real images into --out.
//
// Usage: node --import tsx bench/prior-holes.ts --run runs/results/vae [--n 64] [--out DIR] [--seed 0]
import { tf } from '../src/util/tf.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import { openDataset } from '../src/data/open.ts';
import { readLabelledImages } from '../src/eval/images.ts';
import { meanAndCovariance, symmetricEigen } from '../src/eval/linalg.ts';
import { machineInfo } from '../src/eval/run-eval.ts';
import { loadRun } from '../src/run/checkpoint.ts';
import { stackFromTensor, writeGrid } from '../src/run/images.ts';
import { mulberry32 } from '../src/util/rng.ts';

const { values: args } = parseArgs({
  options: {
    run: { type: 'string' },
    n: { type: 'string', default: '64' },
    out: { type: 'string' },
    seed: { type: 'string', default: '0' },
  },
});
if (!args.run) throw new Error('--run DIR is required');
const n = Number(args.n);
const out = args.out ?? join(args.run, 'prior-holes');
mkdirSync(out, { recursive: true });

const backend = await initBackend('auto', () => undefined);
const { config, model, state } = await loadRun(args.run);
const { image_size: size, in_channels: channels, latent_dim: d } = config.model;
if (model.labelWidth > 0 || !model.gaussianLatent) throw new Error('this study is for unconditional Gaussian VAEs');
const split = await openDataset(config.data, config.data.split);
const train = await readLabelledImages(
  split,
  Array.from({ length: split.length }, (_, i) => i),
  size,
  channels,
  config.data.resize,
);
await split.close();

// ---- the aggregate posterior: encoder means and variances over the training split ----
const per = size * size * channels;
const mus = new Float32Array(train.n * d);
let posteriorVariance = 0;
for (let start = 0; start < train.n; start += 64) {
  const m = Math.min(64, train.n - start);
  const [mu, variance] = tf.tidy(() => {
    const enc = model.encode(
      tf.tensor4d(train.images.subarray(start * per, (start + m) * per), [m, size, size, channels]),
      undefined,
      false,
    );
    return [enc.mu.dataSync(), tf.mean(tf.exp(enc.logvar)).dataSync()[0]!] as const;
  });
  mus.set(mu, start * d);
  posteriorVariance += variance * m;
}
posteriorVariance /= train.n;
const { mean, cov } = meanAndCovariance(mus, train.n, d);
// q(z) as one Gaussian: the spread of the means plus the average posterior variance.
for (let i = 0; i < d; i++) cov.data[i * d + i] += posteriorVariance;
const { values: eigenvalues, vectors } = symmetricEigen(cov);
const sortedEigen = [...eigenvalues].sort((a, b) => b - a);

// ---- draws: the prior, and the fitted aggregate posterior ----
const random = mulberry32(Number(args.seed) + 1);
const gaussian = (): number => {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
};
const prior = Float32Array.from({ length: n * d }, gaussian);
const fitted = new Float32Array(n * d);
for (let s = 0; s < n; s++) {
  const eps = Array.from({ length: d }, gaussian);
  for (let i = 0; i < d; i++) {
    let v = mean[i]!;
    for (let k = 0; k < d; k++) v += vectors.data[i * d + k]! * Math.sqrt(Math.max(eigenvalues[k]!, 0)) * eps[k]!;
    fitted[s * d + i] = v;
  }
}

/** For each image, the MSE ([-1, 1] units) to its nearest training image, skipping training image `skip(i)`. */
function nearestRealMse(images: Float32Array, count: number, skip: (i: number) => number = () => -1): number[] {
  return Array.from({ length: count }, (_, i) => {
    let best = Infinity;
    for (let j = 0; j < train.n; j++) {
      if (j === skip(i)) continue;
      let se = 0;
      for (let k = 0; k < per && se < best * per; k++) se += (images[i * per + k]! - train.images[j * per + k]!) ** 2;
      best = Math.min(best, se / per);
    }
    return best;
  });
}

const average = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
// How far a real image lies from its nearest other training image: beyond the 95th percentile of
// that, a sample is "off the manifold" (the dark squares and grids no training image resembles).
const realNearest = nearestRealMse(train.images, Math.min(train.n, 256), (i) => i).sort((a, b) => a - b);
const offManifold = realNearest[Math.floor(0.95 * (realNearest.length - 1))]!;
async function decode(z: Float32Array, name: string): Promise<{ off_manifold_fraction: number; nearest_real_mse: number; grid: string }> {
  const images = tf.tidy(() => model.decode(tf.tensor2d(z, [n, d]), undefined, false));
  const stack = await stackFromTensor(images);
  const values = stack.data;
  const grid = join(out, `${name}.png`);
  await writeGrid(grid, stack, { cols: 8 });
  images.dispose();
  const nearest = nearestRealMse(values, n);
  return { off_manifold_fraction: nearest.filter((v) => v > offManifold).length / n, nearest_real_mse: average(nearest), grid };
}

const realGrid = join(out, 'real.png');
const realSample = tf.tensor4d(train.images.subarray(0, n * per), [n, size, size, channels]);
await writeGrid(realGrid, await stackFromTensor(realSample), { cols: 8 });
realSample.dispose();
const squaredNorm = (z: Float32Array, i: number): number => z.subarray(i * d, (i + 1) * d).reduce((s, v) => s + v * v, 0);
const meanSquaredNorm = (z: Float32Array, count: number): number =>
  Array.from({ length: count }, (_, i) => squaredNorm(z, i)).reduce((a, b) => a + b, 0) / count;

console.log(
  JSON.stringify({
    bench: 'prior-holes',
    run: args.run,
    model: config.model.name,
    step: state.step,
    kld_weight: config.model.kld_weight,
    latent_dim: d,
    n,
    aggregate_posterior: {
      mean_squared_norm_of_means: meanSquaredNorm(mus, train.n),
      average_posterior_variance: posteriorVariance,
      variance_per_dim: sortedEigen.reduce((a, b) => a + b, 0) / d,
      largest_eigenvalues: sortedEigen.slice(0, 5),
      smallest_eigenvalues: sortedEigen.slice(-5),
      dims_with_variance_below_0_1: sortedEigen.filter((v) => v < 0.1).length,
    },
    prior_squared_norm: meanSquaredNorm(prior, n),
    real: { nearest_other_real_mse_p95: offManifold, grid: realGrid },
    from_prior: await decode(prior, 'samples-prior'),
    from_fitted_posterior: await decode(fitted, 'samples-fitted-posterior'),
    backend: backend.name,
    machine: machineInfo(),
    time: new Date().toISOString(),
  }),
);
model.dispose();
