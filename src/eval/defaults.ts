// The evaluation's defaults that `medvae eval` shows in its --help, in a module that loads nothing:
// its help and its usage errors need no TF.js.
import type { TrainRecipe } from './feature-net.ts';

/** How the feature net and the TSTR classifiers are trained unless told otherwise; part of the feature-net key. */
export const DEFAULT_RECIPE: TrainRecipe = { steps: 300, batchSize: 64, lr: 2e-3 };

/** Classifier seeds of the spread unless told otherwise; the issue asks for at least 5. */
export const DEFAULT_UTILITY_SEEDS = 5;
