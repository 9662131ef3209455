// One evaluation of a trained model: reconstruction on held-out images, sample quality in the
// feature space of the dataset's feature net (distances, precision and recall), diversity, how
// close samples come to training images, membership inference, and (conditional models) TSTR
// and real + synthetic over classifier seeds; and which latent sampler is the default, chosen on the
// validation images so that the held-out numbers are not selected on the held-out images. Every
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
import { frechetDistance, gaussianStats, type GaussianStats } from './frechet.ts';
import { subset, type LabelledImages } from './images.ts';
import { kernelDistance, sampleWithoutReplacement, type KernelDistance } from './kid.ts';
import {
  DATA_RANGE,
  modelLabels,
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
  /** The images the default sampler is chosen on; absent: none given, the held-out split chooses (and the record says so). */
  validation?: ValidationImages;
}

/**
 * The validation split's images at the model's side, or why the data has none. When `split` is the
 * held-out split, the held-out images choose and `images` is not read.
 */
export type ValidationImages = { split: string; images: LabelledImages } | { split: string; missing: string };

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
  /** The default sampler (src/run/sampler-choice.ts) and the images it was chosen on. */
  sampler?: SamplerChoiceMetrics;
  /**
   * The sample-quality numbers of the posterior-mean reconstructions of the n training images of
   * membership inference: the decoder's reference, what it makes of latents a density is fitted to.
   * A sampler near it is held back by the decoder more than by its density (draws can score a little
   * better: they add the posterior's spread). null as privacy; absent from eval.json files before it.
   */
  training_reconstructions?: null | { n: number; sample_quality: EvalMetrics['sample_quality'] };
}

/**
 * Which sampler `medvae sample`, the grids and the report use by default: the lowest Fréchet feature
 * distance of the same draws to the validation images, so that the held-out numbers of the default
 * sampler are not selected on the held-out images.
 */
export interface SamplerChoiceMetrics {
  default: LatentSampler;
  /** The split whose images chose it: the validation split, or the evaluated split when there is none. */
  chosen_on: string;
  /** Why the evaluated split chose (no validation split); null when the validation split did. */
  fallback: string | null;
  /** Images of chosen_on the draws were compared with. */
  n_chosen_on: number;
  /** Fréchet feature distance of each sampler's draws to chosen_on's images (null: not measured): the default is the lowest. */
  frechet_chosen_on: Record<LatentSampler, number | null>;
  /** The same draws' distance to the evaluated split's images: each sampler's sample_quality.frechet_distance. */
  frechet: Record<LatentSampler, number | null>;
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

/** The posterior-mean reconstructions of `data`'s images, clipped to the data's range as generated images are. */
async function reconstructedImages(model: VaeModel, data: LabelledImages, batchSize = 64): Promise<LabelledImages> {
  const indices = Array.from({ length: data.n }, (_, i) => i);
  const out = tf.tidy(() =>
    tf.clipByValue(model.reconstruct(gatherImages(data, indices), modelLabels(model, data, indices), batchSize), -1, 1),
  );
  try {
    return { ...data, images: (await out.data()) as Float32Array };
  } finally {
    out.dispose();
  }
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

/**
 * The real side of every comparison, the same for each sampler's draws and so computed once: the
 * feature net, the features of held-out and (privacy) training images, the statistics of the images
 * the default sampler is chosen on, and the real-vs-real numbers.
 */
interface RealSide {
  classifier: Classifier;
  featureNet: EvalMetrics['sample_quality']['feature_net'];
  real: { n: number; features: Float32Array; stats: GaussianStats };
  train: Float32Array | null;
  /** Of the validation images that choose the default sampler; null when the held-out images choose. */
  selection: { n: number; stats: GaussianStats } | null;
  /** Of precision and recall: each manifold needs more than k points. */
  k: number;
  reference: Pick<EvalMetrics['sample_quality'], 'reference_frechet_distance' | 'reference_kernel_distance' | 'reference_precision_recall'>;
}

function kernelTo(real: RealSide['real'], other: Float32Array, nOther: number, options: EvalOptions): KernelDistance {
  return kernelDistance(real.features, real.n, other, nOther, FEATURE_DIM, {
    seed: hashKeys(options.seed, Stream.eval, 6),
    subsets: options.kidSubsets ?? 10,
    subsetSize: options.kidSubsetSize ?? 100,
  });
}

/** The caller disposes the returned classifier. */
async function realSide(
  inputs: EvalInputs,
  options: EvalOptions,
  recipe: TrainRecipe,
  real: LabelledImages,
  privacyTrain: LabelledImages | undefined,
  selection: LabelledImages | null,
): Promise<RealSide> {
  const { classifier, key, nTrain } = await featureNet(inputs, options, recipe);
  try {
    const referenceSet = subset(
      inputs.train,
      sampleWithoutReplacement(inputs.train.n, Math.min(real.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 11))),
    );
    const realFeatures = await classifier.features(real);
    const referenceFeatures = await classifier.features(referenceSet);
    const train = privacyTrain ? await classifier.features(privacyTrain) : null;
    const selectionStats = selection
      ? { n: selection.n, stats: gaussianStats(await classifier.features(selection), selection.n, FEATURE_DIM) }
      : null;
    const heldOutAccuracy = key.task.kind === 'rotation' ? null : (await scoreOn(classifier, real, key.task.kind)).accuracy;
    const side = { n: real.n, features: realFeatures, stats: gaussianStats(realFeatures, real.n, FEATURE_DIM) };
    // Every sampler draws options.n images.
    const k = Math.min(options.prK ?? DEFAULT_PR_K, real.n - 1, options.n - 1, referenceSet.n - 1);
    return {
      classifier,
      featureNet: {
        id: featureNetKeyId(key),
        version: FEATURE_NET_VERSION,
        seed: options.seed,
        task: key.task.kind,
        dim: FEATURE_DIM,
        recipe,
        n_train: nTrain,
        heldout_accuracy: heldOutAccuracy,
      },
      real: side,
      train,
      selection: selectionStats,
      k,
      reference: {
        reference_frechet_distance: frechetDistance(side.stats, gaussianStats(referenceFeatures, referenceSet.n, FEATURE_DIM)),
        reference_kernel_distance: kernelTo(side, referenceFeatures, referenceSet.n, options),
        reference_precision_recall: precisionRecall(realFeatures, real.n, referenceFeatures, referenceSet.n, FEATURE_DIM, k),
      },
    };
  } catch (e) {
    classifier.dispose();
    throw e;
  }
}

/**
 * Frechet and kernel distances, precision and recall of generated and held-out real images, each
 * next to its real-vs-real value; the generated images' features; and their Frechet distance to the
 * images that choose the default sampler (null when those are the held-out ones).
 */
async function sampleQuality(
  side: RealSide,
  generated: LabelledImages,
  options: EvalOptions,
): Promise<{ quality: EvalMetrics['sample_quality']; features: Float32Array; selectionFrechet: number | null }> {
  const features = await side.classifier.features(generated);
  const stats = gaussianStats(features, generated.n, FEATURE_DIM);
  const { real, reference } = side;
  const quality = {
    n_real: real.n,
    n_generated: generated.n,
    feature_net: side.featureNet,
    frechet_distance: frechetDistance(real.stats, stats),
    reference_frechet_distance: reference.reference_frechet_distance,
    kernel_distance: kernelTo(real, features, generated.n, options),
    reference_kernel_distance: reference.reference_kernel_distance,
    precision_recall: precisionRecall(real.features, real.n, features, generated.n, FEATURE_DIM, side.k),
    reference_precision_recall: reference.reference_precision_recall,
  };
  return { quality, features, selectionFrechet: side.selection ? frechetDistance(side.selection.stats, stats) : null };
}

/** The split whose images choose the default sampler, and those images (null: the held-out ones), or why the held-out split chooses. */
function chooser(inputs: EvalInputs): { split: string; images: LabelledImages | null; fallback: string | null } {
  const v = inputs.validation;
  if (!v) return { split: inputs.heldOutSplit, images: null, fallback: 'no validation images were given' };
  if (v.split === inputs.heldOutSplit) return { split: v.split, images: null, fallback: null };
  if ('missing' in v) return { split: inputs.heldOutSplit, images: null, fallback: v.missing };
  return { split: v.split, images: v.images, fallback: null };
}

function checkImages(data: LabelledImages, what: string, model: VaeModel): void {
  if (data.n < 2) throw new EvalInputError(`${what} has ${data.n} images; need at least 2`);
  if (data.size !== model.config.image_size || data.channels !== model.config.in_channels) {
    throw new EvalInputError(
      `${what} images are ${data.size}px x ${data.channels}ch but the model takes ${model.config.image_size}px x ${model.config.in_channels}ch`,
    );
  }
}

export async function evaluateModel(inputs: EvalInputs, options: EvalOptions): Promise<EvalMetrics> {
  const { model, heldOut } = inputs;
  if (!Number.isInteger(options.n) || options.n < 2) throw new EvalInputError(`--n must be an integer >= 2, got ${options.n}`);
  checkImages(heldOut, `held-out split '${inputs.heldOutSplit}'`, model);
  const choice = chooser(inputs);
  if (choice.images) checkImages(choice.images, `validation split '${choice.split}'`, model);
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
  const side = await realSide(inputs, options, recipe, real, privacyTrain, choice.images);
  try {
    // Every sampler draws options.n images: the same pairs of real images each time.
    const pairs = options.diversityPairs ?? Math.min(100, Math.floor(Math.min(real.n, options.n) / 2));
    const msSsimReal = await meanPairMsSsim(real, pairs, hashKeys(options.seed, Stream.eval, 8));
    /** Sample quality, diversity, privacy and (conditional models) TSTR of n images drawn from the prior or from `latents`; and their distance to the choosing images. */
    const sampleNumbers = async (
      source: 'prior' | 'fitted' | 'mixture',
      latents?: { density: LatentDensity; sampler: FittedSampler },
    ): Promise<{ numbers: Pick<EvalMetrics, 'sample_quality' | 'diversity' | 'tstr' | 'privacy'>; frechetChosenOn: number }> => {
      log(`eval: sampling ${options.n} images from the ${latents ? `latent density's ${latents.sampler}` : 'prior'}`);
      const generated = await generate(model, inputs.train, options.n, heldOut.size, options.seed, latents);
      const { quality: sample_quality, features, selectionFrechet } = await sampleQuality(side, generated, options);
      log(`eval: diversity over ${pairs} pairs`);
      const diversity = {
        pairs,
        ms_ssim_generated: await meanPairMsSsim(generated, pairs, hashKeys(options.seed, Stream.eval, 7)),
        ms_ssim_real: msSsimReal,
      };
      let privacy: SamplePrivacy | null = null;
      if (privacyTrain && side.train) {
        log(`eval: closest of ${privacyTrain.n} training images to each sample and held-out image`);
        const measured = await samplePrivacy(
          { images: generated, features },
          { images: real, features: side.real.features },
          { images: privacyTrain, features: side.train },
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
      return {
        numbers: { sample_quality, diversity, tstr, privacy },
        frechetChosenOn: selectionFrechet ?? sample_quality.frechet_distance,
      };
    };
    const prior = await sampleNumbers('prior');
    let membership: MembershipInference | null = null;
    if (privacyTrain) {
      log(`eval: membership inference, ${members.length} training vs ${real.n} held-out images`);
      membership = await membershipInference(model, subset(privacyTrain, members), real, hashKeys(options.seed, Stream.eval, 14));
    }
    let training_reconstructions: EvalMetrics['training_reconstructions'] = null;
    if (privacyTrain) {
      log(`eval: reconstructing ${members.length} training images, the decoder's reference for every sampler`);
      const reconstructed = await reconstructedImages(model, subset(privacyTrain, members));
      training_reconstructions = { n: members.length, sample_quality: (await sampleQuality(side, reconstructed, options)).quality };
    }
    let density = inputs.latentDensity;
    if (!density && fitImages) {
      log(`eval: the checkpoint has no latent density; fitting one on ${fitImages.n} training images`);
      density = await fitLatentDensityOf(model, fitImages, undefined, 0, options.seed);
    }
    let gaussian: Awaited<ReturnType<typeof sampleNumbers>> | null = null;
    let mixture: Awaited<ReturnType<typeof sampleNumbers>> | null = null;
    let fitted_posterior: EvalMetrics['fitted_posterior'] = null;
    let mixture_posterior: NonNullable<EvalMetrics['mixture_posterior']> | null = null;
    if (density) {
      const n_fit = density.fitImages;
      gaussian = await sampleNumbers('fitted', { density, sampler: 'gaussian' });
      fitted_posterior = { n_fit, ...gaussian.numbers };
      mixture = await sampleNumbers('mixture', { density, sampler: 'mixture' });
      mixture_posterior = { n_fit, components: density.mixture.pooled.length, ...mixture.numbers };
    }
    const frechet_chosen_on = {
      prior: prior.frechetChosenOn,
      gaussian: gaussian?.frechetChosenOn ?? null,
      mixture: mixture?.frechetChosenOn ?? null,
    };
    const sampler: SamplerChoiceMetrics = {
      default: bestByFrechet(frechet_chosen_on),
      chosen_on: choice.split,
      fallback: choice.fallback,
      n_chosen_on: side.selection?.n ?? real.n,
      frechet_chosen_on,
      frechet: {
        prior: prior.numbers.sample_quality.frechet_distance,
        gaussian: gaussian?.numbers.sample_quality.frechet_distance ?? null,
        mixture: mixture?.numbers.sample_quality.frechet_distance ?? null,
      },
    };
    log(samplerLine(sampler, inputs.heldOutSplit));
    return { reconstruction, ...prior.numbers, membership, fitted_posterior, mixture_posterior, sampler, training_reconstructions };
  } finally {
    side.classifier.dispose();
  }
}

/** The log line of the choice: which split chose, by which distances, and a warning when the evaluated split chose itself. */
function samplerLine(s: SamplerChoiceMetrics, heldOutSplit: string): string {
  const distances =
    s.chosen_on === heldOutSplit
      ? JSON.stringify(s.frechet)
      : `${JSON.stringify(s.frechet_chosen_on)}; to the '${heldOutSplit}' images ${JSON.stringify(s.frechet)}`;
  const why = s.fallback === null ? '' : ` (${s.fallback}; its numbers on '${s.chosen_on}' are then selected on the same images)`;
  return `eval: default sampler ${s.default}, chosen on split '${s.chosen_on}'${why}: the lowest Fréchet feature distance to its ${s.n_chosen_on} images ${distances}`;
}
