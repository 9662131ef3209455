// One evaluation of a trained model: reconstruction on held-out images, sample quality in the
// feature space of the dataset's feature net (distances, precision and recall), diversity, how
// close samples come to training images, membership inference, and (conditional models) TSTR
// and real + synthetic over classifier seeds. Every
// random choice derives from `seed`, so the same inputs give the same numbers; the cost grows
// linearly with `n` (reconstructions, samples, feature passes, synthetic training set).
import { tf } from '../util/tf.ts';
import { join } from 'node:path';
import type { VaeModel } from '../models/base.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { loadCachedClassifier, saveCachedClassifier, featureNetKeyId, type FeatureNetData, type FeatureNetKey } from './feature-cache.ts';
import {
  Classifier,
  DEFAULT_RECIPE,
  FEATURE_DIM,
  FEATURE_NET_VERSION,
  gatherImages,
  type ClassifierTask,
  type TrainRecipe,
} from './feature-net.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { subset, type LabelledImages } from './images.ts';
import { kernelDistance, sampleWithoutReplacement, type KernelDistance } from './kid.ts';
import {
  DATA_RANGE,
  reconstructionBaselines,
  reconstructionMetrics,
  type ReconstructionBaselines,
  type ReconstructionMetrics,
} from './reconstruction.ts';
import { fitLatentDensityOf } from './latent-fit.ts';
import type { FittedSampler, LatentDensity, LatentSampler } from '../models/latent-density.ts';
import { drawImages, type DrawSource } from '../models/latent-draw.ts';
import { bestByFrechet } from '../run/sampler-choice.ts';
import { membershipInference, type MembershipInference } from './membership.ts';
import { DEFAULT_PR_K, precisionRecall, type PrecisionRecall } from './precision-recall.ts';
import { samplePrivacy, writeClosestPairsGrid, type SamplePrivacy } from './privacy.ts';
import { evalMsSsim } from './ssim.ts';
import { scoreOn, tstrMetrics, type TstrMetrics } from './utility.ts';

export interface EvalInputs {
  model: VaeModel;
  /** Real training images (any side; the classifiers resize): feature net, TRTR, real + synthetic, labels to condition on. */
  train: LabelledImages;
  /** What `train` was read from: the feature net's cache key. */
  trainData: FeatureNetData;
  /** Per-pixel mean of the training images at the model's side: the mean-image baseline. */
  trainMean: Float32Array;
  /**
   * Training images at the model's side (labels included): the aggregate posterior is fitted on
   * them, samples' closest training images and membership inference's members come from them;
   * absent skips those parts.
   */
  latentFitImages?: LabelledImages;
  /** The checkpoint's latent density; absent, one is fitted on latentFitImages (checkpoints that predate them). */
  latentDensity?: LatentDensity;
  /** Held-out real images at the model's side: reconstruction and the real side of every comparison. */
  heldOut: LabelledImages;
  heldOutSplit: string;
}

/** Training images the feature net sees at most: a seeded subset of larger splits. */
export const DEFAULT_MAX_FEATURE_TRAIN = 10000;

export interface EvalOptions {
  /** Images per side (held-out real capped by the split's size, generated exactly n). */
  n: number;
  seed: number;
  /** Where trained feature nets are kept; undefined trains one every time. */
  featureCacheDir?: string;
  /** Classifier recipe (tests use a short one); part of the cache key. */
  recipe?: TrainRecipe;
  /** Default DEFAULT_MAX_FEATURE_TRAIN. */
  maxFeatureTrain?: number;
  kidSubsets?: number;
  kidSubsetSize?: number;
  diversityPairs?: number;
  /** k of the precision and recall manifolds (default DEFAULT_PR_K). */
  prK?: number;
  /** Classifier seeds of TSTR and real + synthetic (default DEFAULT_UTILITY_SEEDS). */
  utilitySeeds?: number;
  /** Where the pictures of the closest sample / training pairs go (none when undefined). */
  gridDir?: string;
  log?: (line: string) => void;
}

export interface EvalMetrics {
  /** The model's numbers, and the same numbers of two input-independent predictions. */
  reconstruction: ReconstructionMetrics & { baselines: ReconstructionBaselines };
  sample_quality: {
    n_real: number;
    n_generated: number;
    /** A domain feature distance (see feature-net.ts), not FID: compare only runs with the same feature_net.id. */
    feature_net: {
      id: string;
      version: number;
      seed: number;
      task: ClassifierTask['kind'];
      dim: number;
      recipe: TrainRecipe;
      n_train: number;
      heldout_accuracy: number | null;
    };
    frechet_distance: number;
    /** Held-out vs as many real training images: what a perfect generator would score at this n. */
    reference_frechet_distance: number;
    kernel_distance: KernelDistance;
    /** The kernel distance of the same real pairs as reference_frechet_distance. */
    reference_kernel_distance: KernelDistance;
    /** Generated against held-out features (./precision-recall.ts). */
    precision_recall: PrecisionRecall;
    /** The same real training images as reference_frechet_distance against held-out: what real images score. */
    reference_precision_recall: PrecisionRecall;
  };
  diversity: { pairs: number; ms_ssim_generated: number; ms_ssim_real: number };
  tstr: null | TstrMetrics;
  /** Samples' distances to their closest training image (./privacy.ts); null without training images at the model's side or when the held-out split is the training split. */
  privacy: null | SamplePrivacy;
  /** Training vs held-out images told apart by the model's -ELBO and reconstruction error (./membership.ts); null as privacy. */
  membership: null | MembershipInference;
  /**
   * The same sample numbers for draws from the latent density's full-covariance Gaussian instead of
   * the prior (models/latent-density.ts); null without a density (an old checkpoint and no fit images).
   */
  fitted_posterior: null | PosteriorSampleNumbers;
  /** The same for the density's Gaussian mixture; null as fitted_posterior (absent from eval.json files before it). */
  mixture_posterior?: null | (PosteriorSampleNumbers & { components: number });
  /** The default sampler: the lowest Fréchet feature distance of those measured (src/run/sampler-choice.ts); absent before it. */
  sampler?: { default: LatentSampler; frechet: Record<LatentSampler, number | null> };
}

export interface PosteriorSampleNumbers {
  n_fit: number;
  sample_quality: EvalMetrics['sample_quality'];
  diversity: EvalMetrics['diversity'];
  tstr: null | TstrMetrics;
  privacy: null | SamplePrivacy;
}

export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

function classifierTask(data: LabelledImages): ClassifierTask {
  if (data.labelKind === 'none' || data.labelWidth === 0) return { kind: 'rotation', width: 4 };
  return { kind: data.labelKind, width: data.labelWidth };
}

/**
 * n generated images (and, for the conditional model, the label rows they were asked for): decoded
 * prior draws (model.sample), or with `latents` draws from a latent density, of the asked-for
 * class when there is a fit for it.
 */
async function generate(
  model: VaeModel,
  train: LabelledImages,
  n: number,
  side: number,
  seed: number,
  latents?: { density: LatentDensity; sampler: FittedSampler },
): Promise<LabelledImages> {
  const conditional = model.labelWidth > 0 && train.labelWidth > 0;
  const random = mulberry32(hashKeys(seed, Stream.eval, 2));
  const w = conditional ? train.labelWidth : 0;
  // Labels drawn from the training rows keep the class balance and finding co-occurrence.
  const labels = new Float32Array(n * w);
  for (let i = 0; i < n && conditional; i++) {
    const row = Math.floor(random() * train.n);
    labels.set(train.labels.subarray(row * w, (row + 1) * w), i * w);
  }
  const source: DrawSource = latents ? { sampler: latents.sampler, density: latents.density } : { sampler: 'prior' };
  const images = await drawImages(model, { n, seed: hashKeys(seed, Stream.eval, 3), labels, labelWidth: w, source });
  // The feature net and SSIM see images in the data's range, as real ones are.
  for (let i = 0; i < images.length; i++) images[i] = Math.min(1, Math.max(-1, images[i]!));
  return { images, labels, n, size: side, channels: train.channels, labelWidth: w, labelKind: conditional ? train.labelKind : 'none' };
}

/** Mean MS-SSIM over `pairs` seeded random pairs of distinct images. */
async function meanPairMsSsim(data: LabelledImages, pairs: number, seed: number): Promise<number> {
  const random = mulberry32(seed);
  const left: number[] = [];
  const right: number[] = [];
  for (let p = 0; p < pairs; p++) {
    const [i, j] = sampleWithoutReplacement(data.n, 2, random);
    left.push(i);
    right.push(j);
  }
  let sum = 0;
  for (let start = 0; start < pairs; start += 64) {
    const values = tf.tidy(() =>
      evalMsSsim(gatherImages(data, left.slice(start, start + 64)), gatherImages(data, right.slice(start, start + 64)), DATA_RANGE),
    );
    try {
      sum += ((await values.data()) as Float32Array).reduce((s, v) => s + v, 0);
    } finally {
      values.dispose();
    }
  }
  return sum / pairs;
}

/** Which training images (sorted indices) the feature net learns from: all, or a seeded subset. */
export function featureTrainIndices(available: number, max: number, seed: number): number[] {
  if (available <= max) return Array.from({ length: available }, (_, i) => i);
  return sampleWithoutReplacement(available, max, mulberry32(hashKeys(seed, Stream.eval, 4))).sort((a, b) => a - b);
}

async function featureNet(
  inputs: EvalInputs,
  options: EvalOptions,
  recipe: TrainRecipe,
): Promise<{ classifier: Classifier; key: FeatureNetKey; nTrain: number }> {
  const task = classifierTask(inputs.train);
  const maxTrain = options.maxFeatureTrain ?? DEFAULT_MAX_FEATURE_TRAIN;
  const trainSet =
    inputs.train.n > maxTrain ? subset(inputs.train, featureTrainIndices(inputs.train.n, maxTrain, options.seed)) : inputs.train;
  const key: FeatureNetKey = {
    ...inputs.trainData,
    imageSize: inputs.train.size,
    channels: inputs.train.channels,
    task,
    recipe,
    seed: options.seed,
  };
  const cached = options.featureCacheDir ? await loadCachedClassifier(options.featureCacheDir, key) : undefined;
  if (cached) {
    options.log?.(`eval: feature net ${featureNetKeyId(key)} from ${options.featureCacheDir}`);
    return { classifier: cached, key, nTrain: trainSet.n };
  }
  options.log?.(`eval: training feature net ${featureNetKeyId(key)} on ${trainSet.n} real images (${task.kind}, ${recipe.steps} steps)`);
  const classifier = Classifier.create(task, inputs.train.channels, options.seed);
  classifier.train(trainSet, recipe, options.seed);
  if (options.featureCacheDir) await saveCachedClassifier(options.featureCacheDir, key, classifier);
  return { classifier, key, nTrain: trainSet.n };
}

/** Feature vectors of the feature net (FEATURE_DIM each) of held-out, generated and (privacy) training images. */
interface SampleFeatures {
  real: Float32Array;
  generated: Float32Array;
  train: Float32Array | null;
}

/**
 * Frechet and kernel distances, precision and recall of generated and held-out real images, each
 * next to its real-vs-real value; and the features, of `privacyTrain` too when given.
 */
async function sampleQuality(
  inputs: EvalInputs,
  options: EvalOptions,
  real: LabelledImages,
  generated: LabelledImages,
  recipe: TrainRecipe,
  privacyTrain: LabelledImages | undefined,
): Promise<{ quality: EvalMetrics['sample_quality']; features: SampleFeatures }> {
  const { classifier, key, nTrain } = await featureNet(inputs, options, recipe);
  const referenceSet = subset(
    inputs.train,
    sampleWithoutReplacement(inputs.train.n, Math.min(real.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 11))),
  );
  let realFeatures: Float32Array, fakeFeatures: Float32Array, referenceFeatures: Float32Array;
  let trainFeatures: Float32Array | null = null;
  let heldOutAccuracy: number | null;
  try {
    realFeatures = await classifier.features(real);
    fakeFeatures = await classifier.features(generated);
    referenceFeatures = await classifier.features(referenceSet);
    if (privacyTrain) trainFeatures = await classifier.features(privacyTrain);
    heldOutAccuracy = key.task.kind === 'rotation' ? null : (await scoreOn(classifier, real, key.task.kind)).accuracy;
  } finally {
    classifier.dispose();
  }

  const realStats = gaussianStats(realFeatures, real.n, FEATURE_DIM);
  const kid = (other: Float32Array, nOther: number): KernelDistance =>
    kernelDistance(realFeatures, real.n, other, nOther, FEATURE_DIM, {
      seed: hashKeys(options.seed, Stream.eval, 6),
      subsets: options.kidSubsets ?? 10,
      subsetSize: options.kidSubsetSize ?? 100,
    });
  // Each manifold needs more than k points.
  const k = Math.min(options.prK ?? DEFAULT_PR_K, real.n - 1, generated.n - 1, referenceSet.n - 1);
  const quality = {
    n_real: real.n,
    n_generated: generated.n,
    feature_net: {
      id: featureNetKeyId(key),
      version: FEATURE_NET_VERSION,
      seed: options.seed,
      task: key.task.kind,
      dim: FEATURE_DIM,
      recipe,
      n_train: nTrain,
      heldout_accuracy: heldOutAccuracy,
    },
    frechet_distance: frechetDistance(realStats, gaussianStats(fakeFeatures, generated.n, FEATURE_DIM)),
    reference_frechet_distance: frechetDistance(realStats, gaussianStats(referenceFeatures, referenceSet.n, FEATURE_DIM)),
    kernel_distance: kid(fakeFeatures, generated.n),
    reference_kernel_distance: kid(referenceFeatures, referenceSet.n),
    precision_recall: precisionRecall(realFeatures, real.n, fakeFeatures, generated.n, FEATURE_DIM, k),
    reference_precision_recall: precisionRecall(realFeatures, real.n, referenceFeatures, referenceSet.n, FEATURE_DIM, k),
  };
  return { quality, features: { real: realFeatures, generated: fakeFeatures, train: trainFeatures } };
}

export async function evaluateModel(inputs: EvalInputs, options: EvalOptions): Promise<EvalMetrics> {
  const { model, heldOut } = inputs;
  if (!Number.isInteger(options.n) || options.n < 2) throw new EvalInputError(`--n must be an integer >= 2, got ${options.n}`);
  if (heldOut.n < 2) throw new EvalInputError(`held-out split '${inputs.heldOutSplit}' has ${heldOut.n} images; need at least 2`);
  if (heldOut.size !== model.config.image_size || heldOut.channels !== model.config.in_channels) {
    throw new EvalInputError(
      `held-out images are ${heldOut.size}px x ${heldOut.channels}ch but the model takes ${model.config.image_size}px x ${model.config.in_channels}ch`,
    );
  }
  const recipe = options.recipe ?? DEFAULT_RECIPE;
  const log = options.log ?? (() => undefined);
  const real =
    heldOut.n > options.n
      ? subset(
          heldOut,
          Array.from({ length: options.n }, (_, i) => i),
        )
      : heldOut;

  log(`eval: reconstructing ${real.n} held-out images`);
  const reconstruction = {
    ...(await reconstructionMetrics(model, real, hashKeys(options.seed, Stream.eval, 5))),
    baselines: await reconstructionBaselines(real, inputs.trainMean),
  };

  const conditional = model.labelWidth > 0 && heldOut.labelKind !== 'none' && heldOut.labelWidth > 0;
  const fitImages = inputs.latentFitImages;
  // Scored against its own split, every held-out image would be its own closest training image and a member.
  const privacyTrain = fitImages && inputs.heldOutSplit !== inputs.trainData.split ? fitImages : undefined;
  if (fitImages && !privacyTrain)
    log(`eval: held-out split '${inputs.heldOutSplit}' is the training split: no privacy or membership numbers`);
  // As many training images as held-out ones: the members of membership inference, and the training side of share_closer_to_train.
  const members = privacyTrain
    ? sampleWithoutReplacement(privacyTrain.n, Math.min(real.n, privacyTrain.n), mulberry32(hashKeys(options.seed, Stream.eval, 13))).sort(
        (a, b) => a - b,
      )
    : [];
  /** Sample quality, diversity, privacy and (conditional models) TSTR of n images drawn from the prior or from `latents`. */
  const sampleNumbers = async (
    source: 'prior' | 'fitted' | 'mixture',
    latents?: { density: LatentDensity; sampler: FittedSampler },
  ): Promise<Pick<EvalMetrics, 'sample_quality' | 'diversity' | 'tstr' | 'privacy'>> => {
    log(`eval: sampling ${options.n} images from the ${latents ? `latent density's ${latents.sampler}` : 'prior'}`);
    const generated = await generate(model, inputs.train, options.n, heldOut.size, options.seed, latents);
    const { quality: sample_quality, features } = await sampleQuality(inputs, options, real, generated, recipe, privacyTrain);
    const pairs = options.diversityPairs ?? Math.min(100, Math.floor(Math.min(real.n, generated.n) / 2));
    log(`eval: diversity over ${pairs} pairs`);
    const diversity = {
      pairs,
      ms_ssim_generated: await meanPairMsSsim(generated, pairs, hashKeys(options.seed, Stream.eval, 7)),
      ms_ssim_real: await meanPairMsSsim(real, pairs, hashKeys(options.seed, Stream.eval, 8)),
    };
    let privacy: SamplePrivacy | null = null;
    if (privacyTrain && features.train) {
      log(`eval: closest of ${privacyTrain.n} training images to each sample and held-out image`);
      const measured = await samplePrivacy(
        { images: generated, features: features.generated },
        { images: real, features: features.real },
        { images: privacyTrain, features: features.train },
        members,
        FEATURE_DIM,
      );
      const grid = options.gridDir === undefined ? null : `eval-closest-pairs-${source}.png`;
      if (options.gridDir !== undefined && grid !== null)
        await writeClosestPairsGrid(join(options.gridDir, grid), measured.closest_pairs, generated, privacyTrain);
      privacy = { ...measured, grid };
    }
    const tstr = conditional
      ? await tstrMetrics(inputs.train, real, generated, { recipe, seed: options.seed, seeds: options.utilitySeeds, log })
      : null;
    return { sample_quality, diversity, tstr, privacy };
  };
  const fromPrior = await sampleNumbers('prior');
  let membership: MembershipInference | null = null;
  if (privacyTrain) {
    log(`eval: membership inference, ${members.length} training vs ${real.n} held-out images`);
    membership = await membershipInference(model, subset(privacyTrain, members), real, hashKeys(options.seed, Stream.eval, 14));
  }
  let density = inputs.latentDensity;
  if (!density && fitImages) {
    log(`eval: the checkpoint has no latent density; fitting one on ${fitImages.n} training images`);
    density = await fitLatentDensityOf(model, fitImages, undefined, 0, options.seed);
  }
  let fitted_posterior: EvalMetrics['fitted_posterior'] = null;
  let mixture_posterior: NonNullable<EvalMetrics['mixture_posterior']> | null = null;
  if (density) {
    const n_fit = density.fitImages;
    fitted_posterior = { n_fit, ...(await sampleNumbers('fitted', { density, sampler: 'gaussian' })) };
    mixture_posterior = {
      n_fit,
      components: density.mixture.pooled.length,
      ...(await sampleNumbers('mixture', { density, sampler: 'mixture' })),
    };
  }
  const frechet = {
    prior: fromPrior.sample_quality.frechet_distance,
    gaussian: fitted_posterior?.sample_quality.frechet_distance ?? null,
    mixture: mixture_posterior?.sample_quality.frechet_distance ?? null,
  };
  const sampler = { default: bestByFrechet(frechet), frechet };
  log(`eval: default sampler ${sampler.default} (lowest Fréchet feature distance: ${JSON.stringify(frechet)})`);
  return { reconstruction, ...fromPrior, membership, fitted_posterior, mixture_posterior, sampler };
}
