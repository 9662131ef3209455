// What `medvae export-web` hands the page: one plain record, written by the exporter (Node) into
// site.json and model-data.js, read by the page (browser). Only types, constants and pure
// arithmetic here, so both sides import the same definitions.
import type { ModelConfig } from '../config/schema.ts';
import type { ResizeMode } from '../data/transforms.ts';
import type { LatentDensity, LatentSampler } from '../models/latent-density.ts';
import type { SamplerBasis } from '../generate/sample.ts';

export const SITE_FORMAT = 'medvae-web-explorer';
/** 2: `sampling` and the bundle's learned latent density replace version 1's `density` (the prior only). */
export const SITE_VERSION = 2;

/** Files of a site, relative to its folder. */
export const SITE_FILES = {
  page: 'index.html',
  script: 'explorer.js',
  modelData: 'model-data.js',
  metadata: 'site.json',
} as const;

/** The global that model-data.js assigns (a classic script: file:// pages cannot fetch or import modules). */
export const MODEL_DATA_GLOBAL = 'MEDVAE_SITE';

/**
 * Where the page draws latents from: the sampler `medvae sample` uses by default (the page starts
 * with it, see `siteDensity`) and those the viewer may pick instead, the prior and, when the
 * checkpoint has a learned latent density (carried in the bundle), its Gaussian and mixture.
 */
export interface SiteSampling {
  sampler: LatentSampler;
  /** What chose it (`defaultSampler`), and with 'evaluation' the split `medvae eval` measured on. */
  basis: Exclude<SamplerBasis, 'option'>;
  split?: string;
  samplers: LatentSampler[];
}

/** Each sampler in plain words: the picker's option, and what the samples are drawn from. */
export const SAMPLER_WORDS: Record<LatentSampler, { option: string; from: string }> = {
  prior: {
    option: 'standard prior (built into the model)',
    from: 'the standard bell curve built into the model (its prior), which does not know where the codes of real images lie',
  },
  gaussian: {
    option: 'fitted to the training images: one Gaussian',
    from: 'one bell-shaped cloud (a Gaussian) fitted to the codes of the training images',
  },
  mixture: {
    option: 'fitted to the training images: Gaussian mixture',
    from: 'a mixture of bell-shaped clouds (Gaussians) fitted to the codes of the training images, which can follow separate groups among them',
  },
};

/** The page's sentence on where the codes of samples drawn from `chosen` come from, and why the default is the default. */
export function samplerLine(sampling: SiteSampling, chosen: LatentSampler): string {
  const from = `The model makes each image from a short code of numbers; these samples are codes picked at random from ${SAMPLER_WORDS[chosen].from}.`;
  if (chosen === sampling.sampler) return `${from} ${samplerReason(sampling)}`;
  return `${from} This is not the default: that is ${SAMPLER_WORDS[sampling.sampler].from}.`;
}

/** Why the page starts with the sampler it does, in plain words. */
function samplerReason(sampling: SiteSampling): string {
  switch (sampling.basis) {
    case 'evaluation':
      return `It is the default because its samples came closest to real images the model never trained on (the ${sampling.split ?? 'held-out'} split) when the model was evaluated.`;
    case 'likelihood':
      return 'It is the default because it fits the codes of images the model never trained on best; the model has not been evaluated on how real its samples look, which would choose by that instead.';
    case 'no-density':
      return 'This model was saved before checkpoints kept a density fitted to the training images, so its samples can only come from the standard prior.';
  }
}

/** One row of the model card's evaluation table, as `medvae eval` prints it: the number and its baseline. */
export interface CardMetric {
  section: string;
  metric: string;
  value: string;
  baseline: string;
  note: string;
}

/** A network's weights: TF.js weight specs and the bytes, base64 (what tf.io.decodeWeights reads). */
export interface NetworkWeights {
  specs: { name: string; shape: number[]; dtype: string }[];
  base64: string;
}

export interface SiteData {
  format: typeof SITE_FORMAT;
  version: typeof SITE_VERSION;
  /** The model's configuration: the page builds the same networks and loads the weights into them. */
  model: ModelConfig;
  /** train.seed: the page builds the networks as the CLI does before loading weights. */
  seed: number;
  /** Label width of the conditional model (0 otherwise) and the class names, when the data has them. */
  labelWidth: number;
  classNames: string[];
  /** How dropped-in images are resized to the model's side, as the training data was. */
  resize: ResizeMode;
  /** Where samples come from; the density itself travels in the bundle. */
  sampling: SiteSampling;
  /** Decoder sigma of p(x|z) ([-1, 1] units) for the ELBO and imputation, and what it was fitted on. */
  decoderSigma: number;
  sigmaFittedOn: string;
  /** -ELBO (nats) and reconstruction MSE of training images, each sorted ascending: the anomaly score's reference. */
  reference: { description: string; negElbo: number[]; reconMse: number[]; seed: number };
  imputation: { method: 'mwg'; iterations: number; chains: number; cliIterations: number };
  card: {
    run: string;
    checkpoint: string;
    dataset: string;
    trainingImages: number;
    trainingSteps: number;
    parameters: number;
    exportedAt: string;
    /** Null when the run was never evaluated (`medvae eval`). */
    evaluation: { split: string; n: number; rows: CardMetric[] } | null;
  };
}

/** What model-data.js carries beside the record: the latent density (latent-density.json's, null without) and the weights the page loads. */
export interface SiteBundle extends SiteData {
  density: LatentDensity | null;
  weights: { encoder: NetworkWeights; decoder: NetworkWeights };
}

/**
 * Percentage of `sorted` (ascending) below `value`, ties counted half: where an image's score falls
 * among the training images' (50 = typical, 99 = more unusual than 99% of them).
 */
export function percentileOf(sorted: readonly number[], value: number): number {
  if (sorted.length === 0) return NaN;
  let below = 0;
  let equal = 0;
  for (const v of sorted) {
    if (v < value) below++;
    else if (v === value) equal++;
  }
  return (100 * (below + equal / 2)) / sorted.length;
}

/** The q-th quantile (0..1) of ascending `sorted`, linear between neighbours. */
export function quantileOf(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}
