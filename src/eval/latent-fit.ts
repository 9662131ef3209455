// Ex-post density estimation (Ghosh et al. 2020): a Gaussian fitted to the aggregate posterior,
// the latents the decoder was actually trained on, to draw samples from instead of the prior.
// Under a weak KL weight the encoder spreads the data over a few directions far wider than N(0, I),
// so prior draws land where the decoder saw no image (bench/prior-holes.ts shows it). The fit
// matches the mixture's first two moments: the mean of the encoder means, and their covariance
// plus the average posterior variance (which also keeps the fit full-rank for small classes).
// A conditional model gets one fit per class, so that draws of class k look like class-k images.
import * as tf from '@tensorflow/tfjs';
import type { VaeModel } from '../models/base.ts';
import type { LabelledImages } from './images.ts';
import { meanAndCovariance, symmetricEigen } from './linalg.ts';

export class LatentFitError extends Error {
  override name = 'LatentFitError';
}

/** N(mean, factor factor^T), factor d x d row-major. */
export interface LatentGaussian {
  d: number;
  mean: Float64Array;
  factor: Float64Array;
}

export interface FittedLatents {
  all: LatentGaussian;
  /** Class kind labels only: one fit per class with at least 2 images (undefined otherwise). */
  perClass: (LatentGaussian | undefined)[];
}

function gaussianOf(rows: Float32Array, n: number, d: number, posteriorVariance: Float64Array): LatentGaussian {
  const { mean, cov } = meanAndCovariance(rows, n, d);
  for (let j = 0; j < d; j++) cov.data[j * d + j] += posteriorVariance[j]! / n;
  const { values, vectors } = symmetricEigen(cov);
  const factor = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) factor[i * d + k] = vectors.data[i * d + k]! * Math.sqrt(Math.max(values[k]!, 0));
  return { d, mean, factor };
}

/** Encodes `data` (at the model's side, labels for the conditional model) and fits the Gaussians. */
export async function fitLatents(model: VaeModel, data: LabelledImages): Promise<FittedLatents> {
  if (!model.gaussianLatent)
    throw new LatentFitError(`model '${model.kind}' has a discrete latent part: only the prior can be sampled`);
  const d = model.config.latent_dim;
  const per = data.size * data.size * data.channels;
  const conditional = model.labelWidth > 0 && data.labelWidth > 0;
  const mus = new Float32Array(data.n * d);
  const variances = new Float32Array(data.n * d);
  for (let start = 0; start < data.n; start += 64) {
    const m = Math.min(64, data.n - start);
    // Means and variances side by side (m x 2d), in one asynchronous read.
    const both = tf.tidy(() => {
      const images = tf.tensor4d(data.images.subarray(start * per, (start + m) * per), [m, data.size, data.size, data.channels]);
      const labels = conditional
        ? tf.tensor2d(data.labels.subarray(start * data.labelWidth, (start + m) * data.labelWidth), [m, data.labelWidth])
        : undefined;
      const enc = model.encode(images, labels, false);
      return tf.concat([enc.mu, tf.exp(enc.logvar)], 1);
    });
    let values: Float32Array;
    try {
      values = (await both.data()) as Float32Array;
    } finally {
      both.dispose();
    }
    for (let i = 0; i < m; i++) {
      mus.set(values.subarray(2 * i * d, (2 * i + 1) * d), (start + i) * d);
      variances.set(values.subarray((2 * i + 1) * d, (2 * i + 2) * d), (start + i) * d);
    }
  }
  const fit = (members: number[]): LatentGaussian => {
    const rows = new Float32Array(members.length * d);
    const varianceSum = new Float64Array(d);
    members.forEach((i, r) => {
      rows.set(mus.subarray(i * d, (i + 1) * d), r * d);
      for (let j = 0; j < d; j++) varianceSum[j] += variances[i * d + j]!;
    });
    return gaussianOf(rows, members.length, d, varianceSum);
  };
  const everyone = Array.from({ length: data.n }, (_, i) => i);
  if (data.n < 2) throw new LatentFitError(`fitting the aggregate posterior needs at least 2 images, got ${data.n}`);
  const perClass: (LatentGaussian | undefined)[] = [];
  if (conditional && data.labelKind === 'class') {
    for (let c = 0; c < data.labelWidth; c++) {
      const members = everyone.filter((i) => data.labels[i * data.labelWidth + c]! > 0.5);
      perClass.push(members.length >= 2 ? fit(members) : undefined);
    }
  }
  return { all: fit(everyone), perClass };
}

/** `count` draws from `g` (rows of a count x d array), with standard normals from `normal`. */
export function drawLatents(g: LatentGaussian, count: number, normal: () => number): Float32Array {
  const { d, mean, factor } = g;
  const out = new Float32Array(count * d);
  const eps = new Float64Array(d);
  for (let s = 0; s < count; s++) {
    for (let k = 0; k < d; k++) eps[k] = normal();
    for (let i = 0; i < d; i++) {
      let v = mean[i]!;
      for (let k = 0; k < d; k++) v += factor[i * d + k]! * eps[k]!;
      out[s * d + i] = v;
    }
  }
  return out;
}

/**
 * One latent row per label row (count x d): a draw from the fit of the row's class when there is
 * one (one-hot rows of a conditional model), from the fit of all images otherwise.
 */
export function drawLatentsFor(
  latents: FittedLatents,
  labels: Float32Array,
  width: number,
  count: number,
  normal: () => number,
): Float32Array {
  const d = latents.all.d;
  const z = new Float32Array(count * d);
  for (let i = 0; i < count; i++) {
    const row = width > 0 ? labels.subarray(i * width, (i + 1) * width) : new Float32Array(0);
    z.set(drawLatents(latents.perClass[row.indexOf(1)] ?? latents.all, 1, normal), i * d);
  }
  return z;
}

/** Box-Muller standard normals from a uniform generator. */
export function normalFrom(uniform: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
}
