// What `medvae export-web` hands the page: one plain record, written by the exporter (Node) into
// site.json and model-data.js, read by the page (browser). Only types, constants and pure
// arithmetic here, so both sides import the same definitions.
import type { ModelConfig } from '../config/schema.ts';
import type { ResizeMode } from '../data/transforms.ts';

export const SITE_FORMAT = 'medvae-web-explorer';
export const SITE_VERSION = 1;

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
 * Where the page draws latents from. Only the N(0, I) prior exists today; a density learned on the
 * training images and saved with the checkpoint will be another kind here (see `siteDensity`).
 */
export type LatentDensity = { kind: 'prior' };

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
  density: LatentDensity;
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

/** What model-data.js carries beside the record: the weights the page loads. */
export interface SiteBundle extends SiteData {
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
