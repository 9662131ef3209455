// A density of the aggregate posterior, fitted to the encoder's outputs over the training images and
// saved in every checkpoint, to draw latents from instead of the prior (ex-post density estimation,
// Ghosh et al. 2020). Under a weak KL weight the encoder spreads the data over a few directions far
// wider than N(0, I), so prior draws land where the decoder saw no image (bench/prior-holes.ts).
//
// Two densities are fitted: a full-covariance Gaussian and a Gaussian mixture whose number of
// components is chosen by the validation images' log-likelihood. Each point is the encoder's
// posterior N(mu_i, diag(v_i)), so a component's covariance is the weighted covariance of the means
// plus the weighted mean posterior variance (the moments of the mixture of posteriors it covers;
// this also keeps small classes full-rank). A conditional model gets one fit per class (the pooled
// fit stands in for a class with too few images); a model with categorical latents (JointVAE) gets
// the empirical frequencies of the encoder's most likely category of each.
//
// Pure and deterministic (seeded), plain JSON, no Node API and no tensors: the web explorer bundles it.
import { mulberry32 } from '../util/rng.ts';
import { LATENT_SAMPLERS, type FittedSampler, type LatentSampler } from './latent-sampler.ts';

export const LATENT_DENSITY_FORMAT = 'medvae-latent-density';
/** The file a checkpoint keeps it in. */
export const LATENT_DENSITY_FILE = 'latent-density.json';

export { LATENT_SAMPLERS, type FittedSampler, type LatentSampler };

/** Mixture sizes tried; the validation images' log-likelihood picks one. */
export const MIXTURE_SIZES: readonly number[] = [1, 2, 4, 8];
/** A component is fitted only with at least this many images per component. */
const IMAGES_PER_COMPONENT = 8;
/** A class gets its own fit from this many training images; rarer classes use the pooled fit. */
export const MIN_CLASS_IMAGES = 2;
const EM_ITERATIONS = 20;
/** EM stops when the mean log-likelihood per image gains less than this. */
const EM_TOLERANCE = 1e-5;

export class LatentDensityError extends Error {
  override name = 'LatentDensityError';
}

export interface MixtureComponent {
  weight: number;
  mean: number[];
  /** Lower-triangular Cholesky factor L of the covariance L L^T, row-major d x d. */
  cholesky: number[];
}

/** One density over the continuous latent: one component is the full-covariance Gaussian. */
export type GaussianMixture = MixtureComponent[];

export interface ClassConditional {
  pooled: GaussianMixture;
  /** Conditional models: one per class, null where the class had fewer than MIN_CLASS_IMAGES images. */
  perClass: (GaussianMixture | null)[];
}

export interface LatentDensity {
  format: typeof LATENT_DENSITY_FORMAT;
  version: 1;
  /** The optimizer step of the weights whose encoder it was fitted to. */
  step: number;
  /** Width of the continuous latent. */
  dim: number;
  gaussian: ClassConditional;
  mixture: ClassConditional;
  /** Categorical latents (JointVAE): per variable, the frequency of each category; null without. */
  discrete: number[][] | null;
  fitImages: number;
  validationImages: number;
  /** Mean log-likelihood of the validation images' encoder means under each; null without validation images. */
  heldOutLogLikelihood: Record<LatentSampler, number | null>;
  /** The highest held-out log-likelihood (gaussian without validation images): the default until `medvae eval` picks by feature distance. */
  preferred: LatentSampler;
}

/** The encoder's outputs over a set of images, row-major n x dim. */
export interface EncodedLatents {
  n: number;
  dim: number;
  means: Float32Array;
  variances: Float32Array;
  /** Class index of each image, -1 without one (unconditional, or multi-label). */
  classes: Int32Array;
  /** n x categories.length most likely category of each categorical latent; empty without. */
  categories: Int32Array;
  /** Number of categories of each categorical latent (empty without). */
  categoryCounts: number[];
}

// --- linear algebra on small dense matrices (row-major) ---

/** Cholesky factor of a symmetric positive definite matrix; adds jitter to the diagonal until it is one. */
function cholesky(a: Float64Array, d: number): Float64Array {
  let scale = 0;
  for (let i = 0; i < d; i++) scale += a[i * d + i]! / d;
  for (let jitter = 0, attempt = 0; attempt < 12; attempt++, jitter = Math.max(jitter * 10, 1e-10 * Math.max(scale, 1e-12))) {
    const l = new Float64Array(d * d);
    let ok = true;
    for (let i = 0; i < d && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let s = a[i * d + j]! + (i === j ? jitter : 0);
        for (let k = 0; k < j; k++) s -= l[i * d + k]! * l[j * d + k]!;
        if (i === j) {
          if (!(s > 0)) {
            ok = false;
            break;
          }
          l[i * d + i] = Math.sqrt(s);
        } else l[i * d + j] = s / l[j * d + j]!;
      }
    }
    if (ok) return l;
  }
  throw new LatentDensityError('covariance is not positive definite even with jitter (non-finite encoder outputs?)');
}

const LOG_2PI = Math.log(2 * Math.PI);

/** log N(x | mean, L L^T), x at `offset` of `points`. */
function logGaussian(
  points: ArrayLike<number>,
  offset: number,
  mean: ArrayLike<number>,
  l: ArrayLike<number>,
  d: number,
  y: Float64Array,
): number {
  let quadratic = 0;
  let logDet = 0;
  for (let i = 0; i < d; i++) {
    let s = points[offset + i]! - mean[i]!;
    for (let k = 0; k < i; k++) s -= l[i * d + k]! * y[k]!;
    y[i] = s / l[i * d + i]!;
    quadratic += y[i]! * y[i]!;
    logDet += Math.log(l[i * d + i]!);
  }
  return -0.5 * quadratic - logDet - 0.5 * d * LOG_2PI;
}

function logSumExp(values: Float64Array, count: number): number {
  let max = -Infinity;
  for (let k = 0; k < count; k++) max = Math.max(max, values[k]!);
  if (max === -Infinity) return max;
  let s = 0;
  for (let k = 0; k < count; k++) s += Math.exp(values[k]! - max);
  return max + Math.log(s);
}

/** log p(x) under a mixture, x at `offset` of `points`. */
function logMixture(
  mixture: GaussianMixture,
  points: ArrayLike<number>,
  offset: number,
  d: number,
  scratch: Float64Array,
  y: Float64Array,
): number {
  mixture.forEach((c, k) => (scratch[k] = Math.log(c.weight) + logGaussian(points, offset, c.mean, c.cholesky, d, y)));
  return logSumExp(scratch, mixture.length);
}

/** Mean log-likelihood of the rows `members` of `points` (n x d) under `mixture`. */
export function meanLogLikelihood(mixture: GaussianMixture, points: ArrayLike<number>, members: readonly number[], d: number): number {
  const scratch = new Float64Array(mixture.length);
  const y = new Float64Array(d);
  let sum = 0;
  for (const i of members) sum += logMixture(mixture, points, i * d, d, scratch, y);
  return sum / members.length;
}

/** Mean log-likelihood under N(0, I). */
function priorLogLikelihood(points: ArrayLike<number>, members: readonly number[], d: number): number {
  let sum = 0;
  for (const i of members) for (let j = 0; j < d; j++) sum += -0.5 * points[i * d + j]! ** 2 - 0.5 * LOG_2PI;
  return sum / members.length;
}

// --- fitting ---

/**
 * The components' weights, means and covariances from responsibilities (n x k): the weighted
 * moments of the means plus the weighted mean posterior variance. Components left with no weight are dropped.
 */
function maximise(latents: EncodedLatents, members: readonly number[], resp: Float64Array, k: number): GaussianMixture {
  const d = latents.dim;
  const { means: x, variances: v } = latents;
  const out: GaussianMixture = [];
  for (let c = 0; c < k; c++) {
    let total = 0;
    const mean = new Float64Array(d);
    members.forEach((i, r) => {
      const w = resp[r * k + c]!;
      total += w;
      for (let j = 0; j < d; j++) mean[j] += w * x[i * d + j]!;
    });
    if (total < 1e-9) continue;
    for (let j = 0; j < d; j++) mean[j] /= total;
    const cov = new Float64Array(d * d);
    const centred = new Float64Array(d);
    members.forEach((i, r) => {
      const w = resp[r * k + c]!;
      if (w === 0) return;
      for (let j = 0; j < d; j++) centred[j] = x[i * d + j]! - mean[j]!;
      for (let a = 0; a < d; a++) {
        const wa = w * centred[a]!;
        for (let b = 0; b <= a; b++) cov[a * d + b] += wa * centred[b]!;
        cov[a * d + a] += w * v[i * d + a]!;
      }
    });
    for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) cov[b * d + a] = cov[a * d + b] /= total;
    out.push({ weight: total / members.length, mean: Array.from(mean), cholesky: Array.from(cholesky(cov, d)) });
  }
  return out;
}

/** k seeds by k-means++ (seeded), then each member's responsibility: 1 for its nearest seed. */
function initialResponsibilities(latents: EncodedLatents, members: readonly number[], k: number, uniform: () => number): Float64Array {
  const d = latents.dim;
  const x = latents.means;
  const squared = (i: number, s: number): number => {
    let t = 0;
    for (let j = 0; j < d; j++) t += (x[i * d + j]! - x[s * d + j]!) ** 2;
    return t;
  };
  const seeds = [members[Math.floor(uniform() * members.length)]!];
  const nearest = members.map((i) => squared(i, seeds[0]!));
  while (seeds.length < k) {
    const total = nearest.reduce((s, t) => s + t, 0);
    let target = uniform() * total;
    let r = 0;
    while (r < members.length - 1 && target >= nearest[r]!) target -= nearest[r++]!;
    seeds.push(members[r]!);
    members.forEach((i, q) => (nearest[q] = Math.min(nearest[q]!, squared(i, members[r]!))));
  }
  const resp = new Float64Array(members.length * k);
  members.forEach((i, r) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (squared(i, seeds[c]!) < squared(i, seeds[best]!)) best = c;
    resp[r * k + best] = 1;
  });
  return resp;
}

/** A k-component mixture of the members' posteriors by EM (k = 1: the full-covariance Gaussian). */
export function fitMixture(latents: EncodedLatents, members: readonly number[], k: number, seed: number): GaussianMixture {
  if (members.length < 1) throw new LatentDensityError('fitting a latent density needs at least one image');
  const d = latents.dim;
  const uniform = mulberry32(seed);
  let mixture = maximise(latents, members, initialResponsibilities(latents, members, Math.min(k, members.length), uniform), k);
  if (k === 1) return mixture;
  const scratch = new Float64Array(k);
  const y = new Float64Array(d);
  let previous = -Infinity;
  for (let iteration = 0; iteration < EM_ITERATIONS; iteration++) {
    const m = mixture.length;
    const resp = new Float64Array(members.length * m);
    let total = 0;
    members.forEach((i, r) => {
      const norm = logMixture(mixture, latents.means, i * d, d, scratch, y);
      total += norm;
      for (let c = 0; c < m; c++) resp[r * m + c] = Math.exp(scratch[c]! - norm);
    });
    const mean = total / members.length;
    mixture = maximise(latents, members, resp, m);
    if (mean - previous < EM_TOLERANCE) break;
    previous = mean;
  }
  return mixture;
}

export interface MixtureChoice {
  mixture: GaussianMixture;
  /** Held-out mean log-likelihood of the choice; null without validation members. */
  heldOut: number | null;
}

/** The mixture of MIXTURE_SIZES with the best held-out log-likelihood (one component without validation members). */
export function chooseMixture(
  train: EncodedLatents,
  members: readonly number[],
  validation: EncodedLatents,
  validationMembers: readonly number[],
  seed: number,
): MixtureChoice {
  const sizes = MIXTURE_SIZES.filter((k) => k === 1 || members.length >= k * IMAGES_PER_COMPONENT);
  let best: MixtureChoice | undefined;
  for (const k of validationMembers.length > 0 ? sizes : [1]) {
    const mixture = fitMixture(train, members, k, seed + k);
    const heldOut = validationMembers.length > 0 ? meanLogLikelihood(mixture, validation.means, validationMembers, train.dim) : null;
    if (!best || (heldOut ?? -Infinity) > (best.heldOut ?? -Infinity)) best = { mixture, heldOut };
  }
  return best!;
}

function indicesWhere(n: number, keep: (i: number) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (keep(i)) out.push(i);
  return out;
}

export interface FitOptions {
  /** The step of the weights, recorded in the density. */
  step: number;
  seed: number;
  /** Classes of a conditional model (0: none, one pooled fit). */
  classCount: number;
}

/** Fits the Gaussian and the mixture (per class with `classCount`) and the category frequencies. */
export function fitLatentDensity(train: EncodedLatents, validation: EncodedLatents, options: FitOptions): LatentDensity {
  if (train.n < 2) throw new LatentDensityError(`fitting the aggregate posterior needs at least 2 images, got ${train.n}`);
  if (validation.dim !== train.dim)
    throw new LatentDensityError(`validation latents have ${validation.dim} dimensions, training ones ${train.dim}`);
  const d = train.dim;
  const everyone = indicesWhere(train.n, () => true);
  const allValidation = indicesWhere(validation.n, () => true);
  const pooledMixture = chooseMixture(train, everyone, validation, allValidation, options.seed);
  const gaussian: ClassConditional = { pooled: fitMixture(train, everyone, 1, options.seed), perClass: [] };
  const mixture: ClassConditional = { pooled: pooledMixture.mixture, perClass: [] };
  for (let c = 0; c < options.classCount; c++) {
    const members = indicesWhere(train.n, (i) => train.classes[i] === c);
    const held = indicesWhere(validation.n, (i) => validation.classes[i] === c);
    const own = members.length >= MIN_CLASS_IMAGES;
    gaussian.perClass.push(own ? fitMixture(train, members, 1, options.seed) : null);
    mixture.perClass.push(own ? chooseMixture(train, members, validation, held, options.seed + 100 * (c + 1)).mixture : null);
  }
  const heldOut = (fit: ClassConditional): number | null => {
    if (validation.n === 0) return null;
    const scratch = new Float64Array(MIXTURE_SIZES.at(-1)!);
    const y = new Float64Array(d);
    let sum = 0;
    for (let i = 0; i < validation.n; i++) sum += logMixture(fitFor(fit, validation.classes[i]!), validation.means, i * d, d, scratch, y);
    return sum / validation.n;
  };
  const heldOutLogLikelihood: Record<LatentSampler, number | null> = {
    prior: validation.n > 0 ? priorLogLikelihood(validation.means, allValidation, d) : null,
    gaussian: heldOut(gaussian),
    mixture: heldOut(mixture),
  };
  const preferred =
    validation.n === 0 ? 'gaussian' : LATENT_SAMPLERS.reduce((a, b) => (heldOutLogLikelihood[b]! > heldOutLogLikelihood[a]! ? b : a));
  return {
    format: LATENT_DENSITY_FORMAT,
    version: 1,
    step: options.step,
    dim: d,
    gaussian,
    mixture,
    discrete: categoryFrequencies(train),
    fitImages: train.n,
    validationImages: validation.n,
    heldOutLogLikelihood,
    preferred,
  };
}

function categoryFrequencies(latents: EncodedLatents): number[][] | null {
  const variables = latents.categoryCounts.length;
  if (variables === 0) return null;
  return latents.categoryCounts.map((count, v) => {
    const frequencies = new Array<number>(count).fill(0);
    for (let i = 0; i < latents.n; i++) frequencies[latents.categories[i * variables + v]!]! += 1 / latents.n;
    return frequencies;
  });
}

function fitFor(fit: ClassConditional, cls: number): GaussianMixture {
  return (cls >= 0 ? fit.perClass[cls] : null) ?? fit.pooled;
}

// --- drawing ---

/** Box-Muller standard normals from a uniform generator. */
export function normalFrom(uniform: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform());
}

/** Index drawn with probability proportional to `weights`. */
function pick(weights: readonly number[], uniform: () => number): number {
  let target = uniform() * weights.reduce((s, w) => s + w, 0);
  for (let k = 0; k < weights.length - 1; k++) {
    target -= weights[k]!;
    if (target < 0) return k;
  }
  return weights.length - 1;
}

/** The width of what `drawLatents` returns per row: the continuous latent and one one-hot per categorical latent. */
export function decoderInputWidth(density: LatentDensity): number {
  return density.dim + (density.discrete ?? []).reduce((s, f) => s + f.length, 0);
}

/** The class a label row asks for: its one-hot index, -1 for none or several. */
export function classOfRow(labels: ArrayLike<number>, offset: number, width: number): number {
  let cls = -1;
  for (let j = 0; j < width; j++) {
    if (labels[offset + j]! > 0.5) {
      if (cls >= 0) return -1;
      cls = j;
    }
  }
  return cls;
}

/**
 * `count` decoder inputs (count x decoderInputWidth, row-major): the continuous part from the
 * sampler's density, of the row's class where it has a fit (one-hot label rows, count x labelWidth),
 * then a one-hot of each categorical latent drawn by its frequencies.
 *
 * `temperature` T scales each draw's deviation from its component's mean: z = mean_k + L_k (T eps),
 * so T = 1 is the density itself and T = 0 the component means; the uniform draws consumed (and so
 * the components and categories picked) are the same at every temperature.
 */
export function drawLatents(
  density: LatentDensity,
  sampler: FittedSampler,
  labels: ArrayLike<number>,
  labelWidth: number,
  count: number,
  uniform: () => number,
  temperature = 1,
): Float32Array {
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw new LatentDensityError(`temperature must be a finite number >= 0, got ${temperature}`);
  const d = density.dim;
  const width = decoderInputWidth(density);
  const out = new Float32Array(count * width);
  const normal = normalFrom(uniform);
  const eps = new Float64Array(d);
  for (let s = 0; s < count; s++) {
    const mixture = fitFor(density[sampler], labelWidth > 0 ? classOfRow(labels, s * labelWidth, labelWidth) : -1);
    const { mean, cholesky: l } =
      mixture[
        pick(
          mixture.map((c) => c.weight),
          uniform,
        )
      ]!;
    for (let k = 0; k < d; k++) eps[k] = temperature * normal();
    for (let i = 0; i < d; i++) {
      let v = mean[i]!;
      for (let k = 0; k <= i; k++) v += l[i * d + k]! * eps[k]!;
      out[s * width + i] = v;
    }
    let offset = s * width + d;
    for (const frequencies of density.discrete ?? []) {
      out[offset + pick(frequencies, uniform)] = 1;
      offset += frequencies.length;
    }
  }
  return out;
}

// --- JSON ---

export function latentDensityToJson(density: LatentDensity): string {
  return JSON.stringify(density);
}

/** Parses and checks a latent density file's text; `source` names it in errors. */
export function parseLatentDensity(text: string, source: string): LatentDensity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new LatentDensityError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const density = parsed as Partial<LatentDensity> | null;
  if (!density || density.format !== LATENT_DENSITY_FORMAT || density.version !== 1)
    throw new LatentDensityError(`${source}: not a version 1 ${LATENT_DENSITY_FORMAT} file`);
  const d = density.dim;
  const checkMixture = (m: GaussianMixture | null | undefined, what: string): void => {
    if (m === null) return;
    if (!Array.isArray(m) || m.length === 0 || m.some((c) => c.mean?.length !== d || c.cholesky?.length !== d! * d! || !(c.weight > 0)))
      throw new LatentDensityError(`${source}: ${what} is not a mixture over ${d} dimensions`);
  };
  if (!Number.isInteger(d) || d! < 1) throw new LatentDensityError(`${source}: dim must be a positive integer`);
  for (const sampler of ['gaussian', 'mixture'] as const) {
    checkMixture(density[sampler]?.pooled, `${sampler}.pooled`);
    (density[sampler]?.perClass ?? []).forEach((m, c) => checkMixture(m, `${sampler}.perClass[${c}]`));
  }
  if (!LATENT_SAMPLERS.includes(density.preferred!))
    throw new LatentDensityError(`${source}: preferred must be one of ${LATENT_SAMPLERS.join(', ')}`);
  return density as LatentDensity;
}
