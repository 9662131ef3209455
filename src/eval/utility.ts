// Downstream utility of a conditional model's labelled samples: classifiers (the feature net's
// architecture and recipe, trained from scratch) trained on synthetic images (TSTR), on as many
// real ones (TRTR), on all real training images alone and with the synthetic ones added, each
// tested on the held-out real images. One classifier seed says little when two numbers differ by a
// point, so all four are retrained with several seeds (same images, other initialisation and batch
// order): mean ± standard deviation, and the paired Student-t 95% interval of TSTR - TRTR and of
// (real + synthetic) - real alone (./stats.ts).
import { Classifier, resizedImages, type ClassifierTask, type TrainRecipe } from './feature-net.ts';
import { binaryAuc, macroAuc } from './auc.ts';
import { concatImages, subset, type LabelledImages } from './images.ts';
import { sampleWithoutReplacement } from './kid.ts';
import { pairedTInterval, spread, type PairedInterval, type Spread } from './stats.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { DEFAULT_UTILITY_SEEDS } from './defaults.ts';

export interface ClassifierScores {
  /** Multi-class: top-1. Multi-label: mean over (image, finding) of (p > 0.5) == target. */
  accuracy: number;
  /** Macro ROC AUC: one-vs-rest per class, or per finding; null when undefined. */
  auc: number | null;
}

/** One score of the four classifiers over the seeds, and the two paired differences. */
export interface UtilitySpread {
  tstr: Spread;
  trtr: Spread;
  real_only: Spread;
  real_plus_synthetic: Spread;
  /** TSTR - TRTR: what training on synthetic instead of as many real images costs. */
  tstr_minus_trtr: PairedInterval;
  /** (real + synthetic) - real alone: what adding the synthetic images gains. */
  synthetic_gain: PairedInterval;
}

/** A classifier trained on real, synthetic or both, tested on the held-out real images. */
export interface TstrMetrics {
  label_kind: 'class' | 'multilabel';
  /** Synthetic training images of TSTR, and real ones of TRTR. */
  n_train: number;
  n_test: number;
  /** tstr, trtr, conditioning and augmentation: the classifiers of the first seed of `over_seeds`. */
  tstr: ClassifierScores;
  trtr: ClassifierScores;
  /** Always predicting the training split's most frequent class (multi-label: each finding's more frequent value). */
  majority_accuracy: number;
  /** The TRTR classifier on the synthetic images, against the labels they were generated for: do samples show their label? */
  conditioning: ClassifierScores;
  /** The paper's purpose: the whole real training set, alone and with the synthetic images added. */
  augmentation: { n_real: number; n_synthetic: number; real_only: ClassifierScores; real_plus_synthetic: ClassifierScores };
  /** The same four classifiers retrained with each classifier seed; auc null when some seed's AUC is undefined. */
  over_seeds: { seeds: number[]; accuracy: UtilitySpread; auc: UtilitySpread | null };
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

export async function scoreOn(classifier: Classifier, test: LabelledImages, kind: 'class' | 'multilabel'): Promise<ClassifierScores> {
  return classifierScores(await classifier.probabilities(test), test.labels, test.n, test.labelWidth, kind);
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

/** Scores on `tests` of a fresh classifier trained on `data`, disposed afterwards. */
async function trainAndScore(
  data: LabelledImages,
  tests: readonly LabelledImages[],
  kind: 'class' | 'multilabel',
  recipe: TrainRecipe,
  seed: number,
): Promise<ClassifierScores[]> {
  const task: ClassifierTask = { kind, width: data.labelWidth };
  const classifier = Classifier.create(task, data.channels, seed);
  try {
    classifier.train(data, recipe, seed);
    const scores: ClassifierScores[] = [];
    for (const test of tests) scores.push(await scoreOn(classifier, test, kind));
    return scores;
  } finally {
    classifier.dispose();
  }
}

/** Scores of the four classifiers of one seed. */
interface SeedRun {
  tstr: ClassifierScores;
  trtr: ClassifierScores;
  realOnly: ClassifierScores;
  realPlusSynthetic: ClassifierScores;
  /** The TRTR classifier on the synthetic images. */
  conditioning: ClassifierScores;
}

const TRAINED_ON = ['tstr', 'trtr', 'realOnly', 'realPlusSynthetic'] as const;

/** The spread of one score of the four classifiers over the seeds. */
function utilitySpread(runs: readonly SeedRun[], score: (s: ClassifierScores) => number): UtilitySpread {
  const [tstr, trtr, realOnly, realPlusSynthetic] = TRAINED_ON.map((of) => runs.map((run) => score(run[of])));
  return {
    tstr: spread(tstr),
    trtr: spread(trtr),
    real_only: spread(realOnly),
    real_plus_synthetic: spread(realPlusSynthetic),
    tstr_minus_trtr: pairedTInterval(tstr, trtr),
    synthetic_gain: pairedTInterval(realPlusSynthetic, realOnly),
  };
}

export interface UtilityOptions {
  recipe: TrainRecipe;
  /** The first classifier seed; the others follow it (seed + 1, ...). Also picks the TRTR subset. */
  seed: number;
  /** Classifier seeds, at least 2 (default DEFAULT_UTILITY_SEEDS). */
  seeds?: number;
  log?: (line: string) => void;
}

/** TSTR, TRTR and real vs real + synthetic for a conditional model's labelled samples, over classifier seeds. */
export async function tstrMetrics(
  train: LabelledImages,
  real: LabelledImages,
  generated: LabelledImages,
  options: UtilityOptions,
): Promise<TstrMetrics> {
  const count = options.seeds ?? DEFAULT_UTILITY_SEEDS;
  if (!Number.isInteger(count) || count < 2) throw new RangeError(`--utility-seeds must be an integer >= 2, got ${count}`);
  const kind = real.labelKind === 'multilabel' ? 'multilabel' : 'class';
  const log = options.log ?? (() => undefined);
  const realTrain = subset(
    train,
    sampleWithoutReplacement(train.n, Math.min(generated.n, train.n), mulberry32(hashKeys(options.seed, Stream.eval, 9))),
  );
  const withSynthetic = concatImages(train, await resizedImages(generated, train.size));
  const seeds = Array.from({ length: count }, (_, s) => options.seed + s);
  const runs: SeedRun[] = [];
  for (const seed of seeds) {
    log(
      `eval: utility seed ${seed}: classifiers on ${generated.n} synthetic, ${realTrain.n} real, ${train.n} real and ${train.n} + ${generated.n} real + synthetic images`,
    );
    const [tstr] = await trainAndScore(generated, [real], kind, options.recipe, seed);
    const [trtr, conditioning] = await trainAndScore(realTrain, [real, generated], kind, options.recipe, seed);
    const [realOnly] = await trainAndScore(train, [real], kind, options.recipe, seed);
    const [realPlusSynthetic] = await trainAndScore(withSynthetic, [real], kind, options.recipe, seed);
    runs.push({ tstr, trtr, realOnly, realPlusSynthetic, conditioning });
  }
  const first = runs[0];
  const aucDefined = runs.every((run) => TRAINED_ON.every((of) => run[of].auc !== null));
  return {
    label_kind: kind,
    n_train: generated.n,
    n_test: real.n,
    tstr: first.tstr,
    trtr: first.trtr,
    majority_accuracy: majorityAccuracy(train, real, kind),
    conditioning: first.conditioning,
    augmentation: { n_real: train.n, n_synthetic: generated.n, real_only: first.realOnly, real_plus_synthetic: first.realPlusSynthetic },
    over_seeds: {
      seeds,
      accuracy: utilitySpread(runs, (s) => s.accuracy),
      auc: aucDefined ? utilitySpread(runs, (s) => s.auc ?? NaN) : null,
    },
  };
}
