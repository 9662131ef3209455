// One evaluation of a trained model: reconstruction on held-out images, sample quality in the
// feature space of the dataset's feature net, diversity, and (conditional models) TSTR. Every
// random choice derives from `seed`, so the same inputs give the same numbers; the cost grows
// linearly with `n` (reconstructions, samples, feature passes, synthetic training set).
import * as tf from '@tensorflow/tfjs';
import type { VaeModel } from '../models/base.ts';
import { msSsim } from '../losses/ssim.ts';
import { hashKeys, mulberry32, stepNoise, Stream } from '../train/rng.ts';
import { binaryAuc, macroAuc } from './auc.ts';
import { loadCachedClassifier, saveCachedClassifier, featureNetKeyId, type FeatureNetKey } from './feature-cache.ts';
import { Classifier, DEFAULT_RECIPE, FEATURE_DIM, FEATURE_NET_VERSION, gatherImages, type ClassifierTask, type TrainRecipe } from './feature-net.ts';
import { frechetDistance, gaussianStats } from './frechet.ts';
import { subset, type LabelledImages } from './images.ts';
import { kernelDistance, sampleWithoutReplacement, type KernelDistance } from './kid.ts';
import { DATA_RANGE, reconstructionMetrics, type ReconstructionMetrics } from './reconstruction.ts';

export interface EvalInputs {
  model: VaeModel;
  /** Real training images (any side; the classifiers resize): feature net, TRTR, labels to condition on. */
  train: LabelledImages;
  /** Name of the split `train` came from (part of the feature-net key). */
  trainSplit: string;
  /** Held-out real images at the model's side: reconstruction and the real side of every comparison. */
  heldOut: LabelledImages;
  heldOutSplit: string;
  /** Identifies the training images (content hash of the dataset file, how they were read): part of the feature-net key. */
  datasetId: string;
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

export interface EvalMetrics {
  reconstruction: ReconstructionMetrics;
  sample_quality: {
    n_real: number;
    n_generated: number;
    /** A domain feature distance (see feature-net.ts), not FID: compare only runs with the same feature_net.id. */
    feature_net: { id: string; version: number; seed: number; task: ClassifierTask['kind']; dim: number; recipe: TrainRecipe; n_train: number; heldout_accuracy: number | null };
    frechet_distance: number;
    /** Held-out vs as many real training images: what a perfect generator would score at this n. */
    reference_frechet_distance: number;
    kernel_distance: KernelDistance;
  };
  diversity: { pairs: number; ms_ssim_generated: number; ms_ssim_real: number };
  tstr: null | { label_kind: 'class' | 'multilabel'; n_train: number; n_test: number; tstr: ClassifierScores; trtr: ClassifierScores };
}

export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

function classifierTask(data: LabelledImages): ClassifierTask {
  if (data.labelKind === 'none' || data.labelWidth === 0) return { kind: 'rotation', width: 4 };
  return { kind: data.labelKind, width: data.labelWidth };
}

export function classifierScores(probabilities: Float32Array, targets: Float32Array, n: number, k: number, kind: 'class' | 'multilabel'): ClassifierScores {
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
  const auc = k === 2 && kind === 'class'
    ? binaryAuc(Array.from({ length: n }, (_, i) => probabilities[i * 2 + 1]), Array.from({ length: n }, (_, i) => targets[i * 2 + 1] > 0.5))
    : macroAuc(probabilities, targets, n, k);
  return { accuracy: correct / (kind === 'class' ? n : n * k), auc: Number.isNaN(auc) ? null : auc };
}

function scoreOn(classifier: Classifier, test: LabelledImages, kind: 'class' | 'multilabel'): ClassifierScores {
  return classifierScores(classifier.probabilities(test), test.labels, test.n, test.labelWidth, kind);
}

/** n generated images (and, for the conditional model, the label rows they were asked for). */
function generate(model: VaeModel, train: LabelledImages, n: number, side: number, seed: number): LabelledImages {
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
  for (let start = 0, b = 0; start < n; start += batch, b++) {
    const size = Math.min(batch, n - start);
    const out = tf.tidy(() => {
      const cond = conditional ? tf.tensor2d(labels.subarray(start * w, (start + size) * w), [size, w]) : undefined;
      return tf.clipByValue(model.sample(size, stepNoise(seed, Stream.eval, 3, b), cond), -1, 1);
    });
    images.set(out.dataSync(), start * per);
    out.dispose();
  }
  return { images, labels, n, size: side, channels: train.channels, labelWidth: w, labelKind: conditional ? train.labelKind : 'none' };
}

/** Mean MS-SSIM over `pairs` seeded random pairs of distinct images. */
function meanPairMsSsim(data: LabelledImages, pairs: number, seed: number): number {
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
    const values = tf.tidy(() => msSsim(gatherImages(data, left.slice(start, start + 64)), gatherImages(data, right.slice(start, start + 64)), { dataRange: DATA_RANGE }));
    sum += (values.dataSync() as Float32Array).reduce((s, v) => s + v, 0);
    values.dispose();
  }
  return sum / pairs;
}

/** Which training images (sorted indices) the feature net learns from: all, or a seeded subset. */
export function featureTrainIndices(available: number, max: number, seed: number): number[] {
  if (available <= max) return Array.from({ length: available }, (_, i) => i);
  return sampleWithoutReplacement(available, max, mulberry32(hashKeys(seed, Stream.eval, 4))).sort((a, b) => a - b);
}

async function featureNet(inputs: EvalInputs, options: EvalOptions, recipe: TrainRecipe): Promise<{ classifier: Classifier; key: FeatureNetKey; nTrain: number }> {
  const task = classifierTask(inputs.train);
  const maxTrain = options.maxFeatureTrain ?? DEFAULT_MAX_FEATURE_TRAIN;
  const trainSet = inputs.train.n > maxTrain ? subset(inputs.train, featureTrainIndices(inputs.train.n, maxTrain, options.seed)) : inputs.train;
  const key: FeatureNetKey = { datasetId: inputs.datasetId, trainSplit: inputs.trainSplit, seed: options.seed, channels: inputs.train.channels, task, recipe };
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

export async function evaluateModel(inputs: EvalInputs, options: EvalOptions): Promise<EvalMetrics> {
  const { model, heldOut } = inputs;
  if (!Number.isInteger(options.n) || options.n < 2) throw new EvalInputError(`--n must be an integer >= 2, got ${options.n}`);
  if (heldOut.n < 2) throw new EvalInputError(`held-out split '${inputs.heldOutSplit}' has ${heldOut.n} images; need at least 2`);
  if (heldOut.size !== model.config.image_size || heldOut.channels !== model.config.in_channels) {
    throw new EvalInputError(`held-out images are ${heldOut.size}px x ${heldOut.channels}ch but the model takes ${model.config.image_size}px x ${model.config.in_channels}ch`);
  }
  const recipe = options.recipe ?? DEFAULT_RECIPE;
  const log = options.log ?? (() => undefined);
  const real = heldOut.n > options.n ? subset(heldOut, Array.from({ length: options.n }, (_, i) => i)) : heldOut;

  log(`eval: reconstructing ${real.n} held-out images`);
  const reconstruction = reconstructionMetrics(model, real, hashKeys(options.seed, Stream.eval, 5));

  log(`eval: sampling ${options.n} images`);
  const generated = generate(model, inputs.train, options.n, heldOut.size, options.seed);

  const { classifier, key, nTrain } = await featureNet(inputs, options, recipe);
  const realFeatures = classifier.features(real);
  const fakeFeatures = classifier.features(generated);
  const referenceSet = subset(inputs.train, sampleWithoutReplacement(inputs.train.n, Math.min(real.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 11))));
  const referenceFeatures = classifier.features(referenceSet);
  const heldOutAccuracy = key.task.kind === 'rotation' ? null : scoreOn(classifier, real, key.task.kind).accuracy;
  classifier.dispose();

  const realStats = gaussianStats(realFeatures, real.n, FEATURE_DIM);
  const frechet = frechetDistance(realStats, gaussianStats(fakeFeatures, generated.n, FEATURE_DIM));
  const referenceFrechet = frechetDistance(realStats, gaussianStats(referenceFeatures, referenceSet.n, FEATURE_DIM));
  const kid = kernelDistance(realFeatures, real.n, fakeFeatures, generated.n, FEATURE_DIM, {
    seed: hashKeys(options.seed, Stream.eval, 6),
    subsets: options.kidSubsets ?? 10,
    subsetSize: options.kidSubsetSize ?? 100,
  });

  const pairs = options.diversityPairs ?? Math.min(100, Math.floor(Math.min(real.n, generated.n) / 2));
  log(`eval: diversity over ${pairs} pairs`);
  const diversity = {
    pairs,
    ms_ssim_generated: meanPairMsSsim(generated, pairs, hashKeys(options.seed, Stream.eval, 7)),
    ms_ssim_real: meanPairMsSsim(real, pairs, hashKeys(options.seed, Stream.eval, 8)),
  };

  let tstr: EvalMetrics['tstr'] = null;
  if (model.kind === 'cvae' && heldOut.labelKind !== 'none' && heldOut.labelWidth > 0) {
    const kind = heldOut.labelKind;
    const task: ClassifierTask = { kind, width: heldOut.labelWidth };
    log(`eval: TSTR, classifiers on ${generated.n} synthetic and ${Math.min(generated.n, inputs.train.n)} real training images`);
    const onSynthetic = Classifier.create(task, heldOut.channels, options.seed);
    onSynthetic.train(generated, recipe, options.seed);
    const realTrain = subset(inputs.train, sampleWithoutReplacement(inputs.train.n, Math.min(generated.n, inputs.train.n), mulberry32(hashKeys(options.seed, Stream.eval, 9))));
    const onReal = Classifier.create(task, heldOut.channels, options.seed);
    onReal.train(realTrain, recipe, options.seed);
    tstr = { label_kind: kind, n_train: generated.n, n_test: real.n, tstr: scoreOn(onSynthetic, real, kind), trtr: scoreOn(onReal, real, kind) };
    onSynthetic.dispose();
    onReal.dispose();
  }

  return {
    reconstruction,
    sample_quality: {
      n_real: real.n,
      n_generated: generated.n,
      feature_net: { id: featureNetKeyId(key), version: FEATURE_NET_VERSION, seed: options.seed, task: key.task.kind, dim: FEATURE_DIM, recipe, n_train: nTrain, heldout_accuracy: heldOutAccuracy },
      frechet_distance: frechet,
      reference_frechet_distance: referenceFrechet,
      kernel_distance: kid,
    },
    diversity,
    tstr,
  };
}
