// One evaluation of a trained model: reconstruction on held-out images, sample quality in the
// feature space of the dataset's feature net, diversity, and (conditional models) TSTR. Every
// random choice derives from `seed`, so the same inputs give the same numbers; the cost grows
// linearly with `n` (reconstructions, samples, feature passes, synthetic training set).
import * as tf from '@tensorflow/tfjs';
import type { VaeModel } from '../models/base.ts';
import { hashKeys, mulberry32, stepNoise, Stream } from '../util/rng.ts';
import { binaryAuc, macroAuc } from './auc.ts';
import { loadCachedClassifier, saveCachedClassifier, featureNetKeyId, type FeatureNetData, type FeatureNetKey } from './feature-cache.ts';
import {
  Classifier,
  DEFAULT_RECIPE,
  FEATURE_DIM,
  FEATURE_NET_VERSION,
  gatherImages,
  resizedImages,
  type ClassifierTask,
  type TrainRecipe,
} from './feature-net.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { concatImages, subset, type LabelledImages } from './images.ts';
import { kernelDistance, sampleWithoutReplacement, type KernelDistance } from './kid.ts';
import {
  DATA_RANGE,
  reconstructionBaselines,
  reconstructionMetrics,
  type ReconstructionBaselines,
  type ReconstructionMetrics,
} from './reconstruction.ts';
import { drawLatentsFor, fitLatents, hasGaussianLatent, normalFrom, type FittedLatents } from './latent-fit.ts';
import { evalMsSsim } from './ssim.ts';

export interface EvalInputs {
  model: VaeModel;
  /** Real training images (any side; the classifiers resize): feature net, TRTR, real + synthetic, labels to condition on. */
  train: LabelledImages;
  /** What `train` was read from: the feature net's cache key. */
  trainData: FeatureNetData;
  /** Per-pixel mean of the training images at the model's side: the mean-image baseline. */
  trainMean: Float32Array;
  /** Training images at the model's side (labels included): the aggregate posterior is fitted on them; absent skips that part. */
  latentFitImages?: LabelledImages;
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
  log?: (line: string) => void;
}

export interface ClassifierScores {
  /** Multi-class: top-1. Multi-label: mean over (image, finding) of (p > 0.5) == target. */
  accuracy: number;
  /** Macro ROC AUC: one-vs-rest per class, or per finding; null when undefined. */
  auc: number | null;
}

/** A classifier trained on real, synthetic or both, tested on the held-out real images. */
export interface TstrMetrics {
  label_kind: 'class' | 'multilabel';
  /** Synthetic training images of TSTR, and real ones of TRTR. */
  n_train: number;
  n_test: number;
  tstr: ClassifierScores;
  trtr: ClassifierScores;
  /** Always predicting the training split's most frequent class (multi-label: each finding's more frequent value). */
  majority_accuracy: number;
  /** The TRTR classifier on the synthetic images, against the labels they were generated for: do samples show their label? */
  conditioning: ClassifierScores;
  /** The paper's purpose: the whole real training set, alone and with the synthetic images added. */
  augmentation: { n_real: number; n_synthetic: number; real_only: ClassifierScores; real_plus_synthetic: ClassifierScores };
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
  };
  diversity: { pairs: number; ms_ssim_generated: number; ms_ssim_real: number };
  tstr: null | TstrMetrics;
  /**
   * The same sample numbers for draws from a Gaussian fitted to the aggregate posterior instead of
   * the prior (./latent-fit.ts); null for models with a discrete latent or without the fit images.
   */
  fitted_posterior: null | {
    n_fit: number;
    sample_quality: EvalMetrics['sample_quality'];
    diversity: EvalMetrics['diversity'];
    tstr: null | TstrMetrics;
  };
}

export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

function classifierTask(data: LabelledImages): ClassifierTask {
  if (data.labelKind === 'none' || data.labelWidth === 0) return { kind: 'rotation', width: 4 };
  return { kind: data.labelKind, width: data.labelWidth };
}

export function classifierScores(
  probabilities: Float32Array,
  targets: Float32Array,
  n: number,
  k: number,
  kind: 'class' | 'multilabel',
): ClassifierScores {
  let correct = 0;
  if (kind === 'class') {
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (probabilities[i * k + c] > probabilities[i * k + best]) best = c;
      if (targets[i * k + best] > 0.5) correct++;
    }
  } else {
    for (let i = 0; i < n * k; i++) if (probabilities[i] > 0.5 === targets[i] > 0.5) correct++;
  }
  // A binary dataset given as 2 one-hot classes has one AUC, the same for both columns.
  const auc =
    k === 2 && kind === 'class'
      ? binaryAuc(
          Array.from({ length: n }, (_, i) => probabilities[i * 2 + 1]),
          Array.from({ length: n }, (_, i) => targets[i * 2 + 1] > 0.5),
        )
      : macroAuc(probabilities, targets, n, k);
  return { accuracy: correct / (kind === 'class' ? n : n * k), auc: Number.isNaN(auc) ? null : auc };
}

async function scoreOn(classifier: Classifier, test: LabelledImages, kind: 'class' | 'multilabel'): Promise<ClassifierScores> {
  return classifierScores(await classifier.probabilities(test), test.labels, test.n, test.labelWidth, kind);
}

/**
 * n generated images (and, for the conditional model, the label rows they were asked for): decoded
 * prior draws (model.sample), or with `latents` draws from the fitted aggregate posterior, of the
 * asked-for class when there is a fit for it.
 */
async function generate(
  model: VaeModel,
  train: LabelledImages,
  n: number,
  side: number,
  seed: number,
  latents?: FittedLatents,
): Promise<LabelledImages> {
  const conditional = model.kind === 'cvae' && train.labelWidth > 0;
  const random = mulberry32(hashKeys(seed, Stream.eval, 2));
  const w = conditional ? train.labelWidth : 0;
  // Labels drawn from the training rows keep the class balance and finding co-occurrence.
  const labels = new Float32Array(n * w);
  for (let i = 0; i < n && conditional; i++) {
    const row = Math.floor(random() * train.n);
    labels.set(train.labels.subarray(row * w, (row + 1) * w), i * w);
  }
  const per = side * side * train.channels;
  const images = new Float32Array(n * per);
  const batch = 64;
  const normal = normalFrom(mulberry32(hashKeys(seed, Stream.eval, 12)));
  const d = model.config.latent_dim;
  for (let start = 0, b = 0; start < n; start += batch, b++) {
    const size = Math.min(batch, n - start);
    const z = latents ? drawLatentsFor(latents, labels.subarray(start * w, (start + size) * w), w, size, normal) : undefined;
    const out = tf.tidy(() => {
      const cond = conditional ? tf.tensor2d(labels.subarray(start * w, (start + size) * w), [size, w]) : undefined;
      const images = z
        ? model.decode(tf.tensor2d(z, [size, d]), cond, false)
        : model.sample(size, stepNoise(seed, Stream.eval, 3, b), cond);
      return tf.clipByValue(images, -1, 1);
    });
    try {
      images.set(await out.data(), start * per);
    } finally {
      out.dispose();
    }
  }
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

/** Frechet and kernel distances of generated and held-out real images, each next to its real-vs-real value. */
async function sampleQuality(
  inputs: EvalInputs,
  options: EvalOptions,
  real: LabelledImages,
  generated: LabelledImages,
  recipe: TrainRecipe,
): Promise<EvalMetrics['sample_quality']> {
  const { classifier, key, nTrain } = await featureNet(inputs, options, recipe);
  const referenceSet = subset(
    inputs.train,
    sampleWithoutReplacement(inputs.train.n, Math.min(real.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 11))),
  );
  let realFeatures: Float32Array, fakeFeatures: Float32Array, referenceFeatures: Float32Array;
  let heldOutAccuracy: number | null;
  try {
    realFeatures = await classifier.features(real);
    fakeFeatures = await classifier.features(generated);
    referenceFeatures = await classifier.features(referenceSet);
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
  return {
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
  };
}

/** Accuracy of predicting, for every image, the training split's label frequencies (argmax / > 0.5). */
export function majorityAccuracy(train: LabelledImages, test: LabelledImages, kind: 'class' | 'multilabel'): number {
  const k = train.labelWidth;
  const frequencies = new Float32Array(k);
  for (let i = 0; i < train.n * k; i++) frequencies[i % k] += train.labels[i] / train.n;
  const constant = new Float32Array(test.n * k);
  for (let i = 0; i < test.n; i++) constant.set(frequencies, i * k);
  return classifierScores(constant, test.labels, test.n, k, kind).accuracy;
}

/** A fresh classifier (the feature net's architecture and recipe) trained on `data`. */
function trainedClassifier(data: LabelledImages, task: ClassifierTask, recipe: TrainRecipe, seed: number): Classifier {
  const classifier = Classifier.create(task, data.channels, seed);
  classifier.train(data, recipe, seed);
  return classifier;
}

/** Scores on `tests` of a classifier trained on `data`, disposed afterwards. */
async function trainAndScore(
  data: LabelledImages,
  tests: readonly LabelledImages[],
  kind: 'class' | 'multilabel',
  recipe: TrainRecipe,
  seed: number,
): Promise<ClassifierScores[]> {
  const classifier = trainedClassifier(data, { kind, width: data.labelWidth }, recipe, seed);
  try {
    const scores: ClassifierScores[] = [];
    for (const test of tests) scores.push(await scoreOn(classifier, test, kind));
    return scores;
  } finally {
    classifier.dispose();
  }
}

/** TSTR, TRTR and real vs real + synthetic for a conditional model's labelled samples. */
async function tstrMetrics(
  inputs: EvalInputs,
  options: EvalOptions,
  real: LabelledImages,
  generated: LabelledImages,
  recipe: TrainRecipe,
): Promise<TstrMetrics> {
  const kind = real.labelKind === 'multilabel' ? 'multilabel' : 'class';
  const log = options.log ?? (() => undefined);
  const realTrain = subset(
    inputs.train,
    sampleWithoutReplacement(inputs.train.n, Math.min(generated.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 9))),
  );
  log(`eval: TSTR, classifiers on ${generated.n} synthetic and ${realTrain.n} real training images`);
  const [tstr] = await trainAndScore(generated, [real], kind, recipe, options.seed);
  const [trtr, conditioning] = await trainAndScore(realTrain, [real, generated], kind, recipe, options.seed);
  log(`eval: real (${inputs.train.n}) vs real + synthetic (${inputs.train.n} + ${generated.n}) training images`);
  const [realOnly] = await trainAndScore(inputs.train, [real], kind, recipe, options.seed);
  const [realPlusSynthetic] = await trainAndScore(
    concatImages(inputs.train, await resizedImages(generated, inputs.train.size)),
    [real],
    kind,
    recipe,
    options.seed,
  );
  return {
    label_kind: kind,
    n_train: generated.n,
    n_test: real.n,
    tstr,
    trtr,
    majority_accuracy: majorityAccuracy(inputs.train, real, kind),
    conditioning,
    augmentation: { n_real: inputs.train.n, n_synthetic: generated.n, real_only: realOnly, real_plus_synthetic: realPlusSynthetic },
  };
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

  const conditional = model.kind === 'cvae' && heldOut.labelKind !== 'none' && heldOut.labelWidth > 0;
  /** Sample quality, diversity and (conditional models) TSTR of n images drawn from the prior or from `latents`. */
  const sampleNumbers = async (latents?: FittedLatents): Promise<Pick<EvalMetrics, 'sample_quality' | 'diversity' | 'tstr'>> => {
    log(`eval: sampling ${options.n} images from the ${latents ? 'fitted aggregate posterior' : 'prior'}`);
    const generated = await generate(model, inputs.train, options.n, heldOut.size, options.seed, latents);
    const sample_quality = await sampleQuality(inputs, options, real, generated, recipe);
    const pairs = options.diversityPairs ?? Math.min(100, Math.floor(Math.min(real.n, generated.n) / 2));
    log(`eval: diversity over ${pairs} pairs`);
    const diversity = {
      pairs,
      ms_ssim_generated: await meanPairMsSsim(generated, pairs, hashKeys(options.seed, Stream.eval, 7)),
      ms_ssim_real: await meanPairMsSsim(real, pairs, hashKeys(options.seed, Stream.eval, 8)),
    };
    return { sample_quality, diversity, tstr: conditional ? await tstrMetrics(inputs, options, real, generated, recipe) : null };
  };
  const fromPrior = await sampleNumbers();
  const fitImages = inputs.latentFitImages;
  let fitted_posterior: EvalMetrics['fitted_posterior'] = null;
  if (fitImages && hasGaussianLatent(model)) {
    log(`eval: fitting the aggregate posterior on ${fitImages.n} training images`);
    fitted_posterior = { n_fit: fitImages.n, ...(await sampleNumbers(await fitLatents(model, fitImages))) };
  }
  return { reconstruction, ...fromPrior, fitted_posterior };
}
