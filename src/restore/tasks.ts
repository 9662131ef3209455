// The restoration numbers: imputation against mean fill and harmonic inpainting, scored on the
// missing pixels only; denoising against a Gaussian blur and a median filter whose sizes are
// chosen on the validation split (best mean PSNR), scored on all pixels. Every number is the mean
// over images of a per-image value (PSNR in dB, SSIM), as src/eval reports its numbers.
import { tf } from '../util/tf.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import { asImages, labelsFor, ranges, sliceTensor } from './batches.ts';
import { gaussianBlur, harmonicInpaint, meanFill, medianFilter } from './baselines.ts';
import type { ImageStack } from '../run/images.ts';
import { imputeImages } from './impute.ts';
import { finiteMean, maskedPsnrPerImage, maskedSsimPerImage, psnrPerImage, ssimPerImage } from './metrics.ts';
import { addNoise, noiseName, type NoiseSpec } from './noise.ts';
import { createCounter } from './progress.ts';
import type { ImputeMethod } from './samplers.ts';

export interface Quality {
  psnr: number;
  ssim: number;
}

export interface ImputationMetrics {
  mask: string;
  n: number;
  iters: number;
  samples: number;
  decoder_sigma: number;
  /** Fraction of pixels missing, mean over images. */
  missing_fraction: number;
  methods: Record<string, Quality & { acceptance: number | null; mean_spread: number }>;
  baselines: { mean_fill: Quality; harmonic: Quality };
}

export interface DenoisingMetrics {
  noise: string;
  n: number;
  noisy: Quality;
  /** The decoder's mean: the posterior-mean reconstruction of the noisy image. */
  model: Quality;
  /**
   * The noisy input and the decoder's mean combined per pixel by their variances
   * (posteriorCombination); null for salt-and-pepper noise, which has no variance to weigh by.
   */
  model_posterior: (Quality & { decoder_rms: number }) | null;
  /** The model's reconstruction of the clean images: the ceiling of its denoising. */
  model_on_clean: Quality;
  gaussian_blur: Quality & { sigma: number };
  median: Quality & { window: number };
}

async function maskedQuality(predicted: Float32Array, target: ImageStack, masks: Uint8Array): Promise<Quality> {
  return {
    psnr: finiteMean(maskedPsnrPerImage(predicted, target, masks)),
    ssim: finiteMean(await maskedSsimPerImage(predicted, target, masks)),
  };
}

async function quality(predicted: Float32Array, target: ImageStack): Promise<Quality> {
  return { psnr: finiteMean(psnrPerImage(predicted, target)), ssim: finiteMean(await ssimPerImage(predicted, target)) };
}

export interface ImputationTaskOptions {
  mask: string;
  methods: readonly ImputeMethod[];
  iters: number;
  samples: number;
  sigma: number;
  seed: number;
  batch: number;
  log?: (line: string) => void;
}

export async function imputationTask(
  model: VaeModel,
  test: LabelledImages,
  masks: Uint8Array,
  opts: ImputationTaskOptions,
): Promise<ImputationMetrics> {
  const target = asImages(test);
  const methods: ImputationMetrics['methods'] = {};
  for (const method of opts.methods) {
    const counter = createCounter(`impute ${opts.mask} (${method})`, test.n, opts.log);
    const result = await imputeImages(model, test, masks, {
      method,
      iters: opts.iters,
      samples: opts.samples,
      sigma: opts.sigma,
      seed: opts.seed,
      batch: opts.batch,
      counter,
    });
    counter.done();
    let spread = 0;
    let count = 0;
    for (let p = 0; p < masks.length; p++) {
      if (masks[p] !== 1) continue;
      for (let c = 0; c < test.channels; c++) spread += result.spread[p * test.channels + c]!;
      count += test.channels;
    }
    methods[method] = {
      ...(await maskedQuality(result.mean, target, masks)),
      acceptance: result.acceptance,
      mean_spread: count > 0 ? spread / count : NaN,
    };
    opts.log?.(`impute ${opts.mask} ${method}: PSNR ${methods[method]!.psnr.toFixed(2)} dB on the missing pixels`);
  }
  let missing = 0;
  for (const m of masks) missing += m;
  return {
    mask: opts.mask,
    n: test.n,
    iters: opts.iters,
    samples: opts.samples,
    decoder_sigma: opts.sigma,
    missing_fraction: missing / masks.length,
    methods,
    baselines: {
      mean_fill: await maskedQuality(meanFill(target, masks), target, masks),
      harmonic: await maskedQuality(harmonicInpaint(target, masks), target, masks),
    },
  };
}

/** The model's denoising: the posterior-mean reconstruction of the noisy image. */
export async function modelDenoise(model: VaeModel, data: LabelledImages, noisy: Float32Array, batch: number): Promise<Float32Array> {
  const out = new Float32Array(noisy.length);
  const per = data.size * data.size * data.channels;
  for (const { start, count } of ranges(data.n, batch)) {
    const rec = tf.tidy(() =>
      model.reconstruct(sliceTensor(noisy, start, count, data.size, data.channels), labelsFor(model, data, start, count)),
    );
    try {
      out.set(await rec.data(), start * per);
    } finally {
      rec.dispose();
    }
  }
  return out;
}

/**
 * The variance the noise adds at each value ([-1, 1] units) where the clean value is about `mean`:
 * Gaussian (2 sigma)^2; Poisson 4 u / PEAK at intensity u = (mean + 1) / 2; null for
 * salt-and-pepper, which replaces values rather than adding to them.
 */
export function noiseVariance(spec: NoiseSpec): ((mean: number) => number) | null {
  if (spec.kind === 'gaussian') return () => (2 * spec.sigma) ** 2;
  if (spec.kind === 'poisson') return (mean) => (2 * Math.max(mean + 1, 0)) / spec.peak;
  return null;
}

/**
 * The mean squared error of the decoder's mean at each value of an image (size x size x channels),
 * over `clean`'s images: the decoder's own variance there, measured on another split than the one
 * it is used on.
 */
export function decoderVariance(decoded: Float32Array, clean: ImageStack): Float32Array {
  const per = clean.size * clean.size * clean.channels;
  const out = new Float32Array(per);
  for (let i = 0; i < decoded.length; i++) out[i % per] += (decoded[i]! - clean.data[i]!) ** 2 / clean.n;
  return out;
}

/**
 * Per value, the posterior mean of the clean x given two Gaussian readings of it: the noisy input
 * y (variance s2, the noise's) and the decoder's mean m (variance d2, its error on validation):
 * x = (d2 y + s2 m) / (s2 + d2). Where the decoder is exact the result is m; where it knows
 * nothing, y.
 */
export function posteriorCombination(
  noisy: Float32Array,
  decoded: Float32Array,
  variance: (mean: number) => number,
  decoderVar: Float32Array,
): Float32Array {
  const out = new Float32Array(noisy.length);
  for (let i = 0; i < noisy.length; i++) {
    const d2 = decoderVar[i % decoderVar.length]!;
    const s2 = variance(decoded[i]!);
    out[i] = s2 + d2 > 0 ? (d2 * noisy[i]! + s2 * decoded[i]!) / (s2 + d2) : decoded[i]!;
  }
  return out;
}

export const BLUR_SIGMAS = [0.5, 0.75, 1, 1.5, 2, 3] as const;
export const MEDIAN_WINDOWS = [3, 5, 7] as const;

/** The parameter whose filter gives the best mean PSNR on `val`'s noisy images. */
export function bestFilterParameter<P extends number>(
  params: readonly P[],
  filter: (images: ImageStack, p: P) => Float32Array,
  noisy: ImageStack,
  clean: ImageStack,
): P {
  let best: P = params[0]!;
  let bestPsnr = -Infinity;
  for (const p of params) {
    const v = finiteMean(psnrPerImage(filter(noisy, p), clean));
    if (v > bestPsnr) {
      bestPsnr = v;
      best = p;
    }
  }
  return best;
}

export const VAL_STREAM = 1;
export const TEST_STREAM = 2;

/** Denoising of one set of images: what each output is, value by value, and its numbers. */
export interface Denoised {
  /** The noisy inputs (test's images, noise drawn from TEST_STREAM). */
  noisy: Float32Array;
  /** The decoder's mean: the posterior-mean reconstruction of each noisy image. */
  mean: Float32Array;
  /** The noisy input and the decoder's mean combined by their variances; null without a noise variance. */
  combined: Float32Array | null;
  /** The baselines at their parameters chosen on the validation split. */
  blurred: Float32Array;
  median: Float32Array;
  metrics: DenoisingMetrics;
}

/**
 * Denoises `test` under `spec`: the noise drawn per image (validation images from VAL_STREAM, test
 * images from TEST_STREAM), the decoder's mean, that mean combined with the input (the decoder's
 * variance measured on `val` at the same noise), a blur and a median filter tuned on `val`; each
 * scored against test's clean images. The one path of `medvae denoise` and the evaluation.
 */
export async function denoiseImages(
  model: VaeModel,
  val: LabelledImages,
  test: LabelledImages,
  spec: NoiseSpec,
  seed: number,
  batch: number,
): Promise<Denoised> {
  const cleanVal = asImages(val);
  const cleanTest = asImages(test);
  const noisyVal: ImageStack = { ...cleanVal, data: addNoise(val.images, val.n, val.channels, spec, seed, 0, VAL_STREAM) };
  const noisyTest: ImageStack = { ...cleanTest, data: addNoise(test.images, test.n, test.channels, spec, seed, 0, TEST_STREAM) };
  const sigma = bestFilterParameter(BLUR_SIGMAS, gaussianBlur, noisyVal, cleanVal);
  const window = bestFilterParameter(MEDIAN_WINDOWS, medianFilter, noisyVal, cleanVal);
  const mean = await modelDenoise(model, test, noisyTest.data, batch);
  const variance = noiseVariance(spec);
  let combined: Float32Array | null = null;
  let posterior: DenoisingMetrics['model_posterior'] = null;
  if (variance) {
    const decoderVar = decoderVariance(await modelDenoise(model, val, noisyVal.data, batch), cleanVal);
    const rms = Math.sqrt(decoderVar.reduce((sum, v) => sum + v, 0) / decoderVar.length);
    combined = posteriorCombination(noisyTest.data, mean, variance, decoderVar);
    posterior = { ...(await quality(combined, cleanTest)), decoder_rms: rms };
  }
  const blurred = gaussianBlur(noisyTest, sigma);
  const median = medianFilter(noisyTest, window);
  return {
    noisy: noisyTest.data,
    mean,
    combined,
    blurred,
    median,
    metrics: {
      noise: noiseName(spec),
      n: test.n,
      noisy: await quality(noisyTest.data, cleanTest),
      model: await quality(mean, cleanTest),
      model_posterior: posterior,
      model_on_clean: await quality(await modelDenoise(model, test, test.images, batch), cleanTest),
      gaussian_blur: { ...(await quality(blurred, cleanTest)), sigma },
      median: { ...(await quality(median, cleanTest)), window },
    },
  };
}

/** denoiseImages' numbers alone. */
export async function denoisingTask(
  model: VaeModel,
  val: LabelledImages,
  test: LabelledImages,
  spec: NoiseSpec,
  seed: number,
  batch: number,
): Promise<DenoisingMetrics> {
  return (await denoiseImages(model, val, test, spec, seed, batch)).metrics;
}
