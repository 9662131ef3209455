// Membership inference: can the model's own fit tell its training images from held-out ones? A
// model that memorised explains its training images better, so an attacker who ranks images by
// -ELBO (or by reconstruction error) and calls the best-explained ones members succeeds more often
// than chance (Hayes et al. 2019 and Hilprecht et al. 2019 for generative models). The AUROC is the
// probability that a held-out image scores worse (higher) than a training image: 0.5 when the model
// treats both alike. The -ELBO is reconstruction.ts's, one seeded z per image, under one decoder
// variance fitted on both sets together, so that the variance itself carries no membership.
import type { VaeModel } from '../models/base.ts';
import { binaryAuc } from './auc.ts';
import type { LabelledImages } from './images.ts';
import { perImageNelbo, perImageReconstruction, sharedDecoderVariance } from './reconstruction.ts';

export interface MembershipScore {
  /** P(held-out score > training score), ties one half; 0.5 = no membership signal. */
  auroc: number;
  /** Mean of the score over the training images and over the held-out ones. */
  train_mean: number;
  heldout_mean: number;
}

export interface MembershipInference {
  n_train: number;
  n_heldout: number;
  /** The shared decoder sigma of the -ELBO, [-1, 1] units. */
  decoder_sigma: number;
  /** Half-width of the 95% range of the AUROC of a model without any membership signal (normal approximation). */
  chance_halfwidth_95: number;
  neg_elbo: MembershipScore;
  /** Mean squared error of the posterior-mean reconstruction. */
  recon_mse: MembershipScore;
}

/**
 * Half-width of the central 95% of the AUROC of two groups of sizes nA, nB scored alike: under that
 * null the Mann-Whitney U has variance nA nB (nA + nB + 1) / 12, so the AUROC = U / (nA nB) has
 * variance (nA + nB + 1) / (12 nA nB).
 */
export function chanceHalfWidth(nA: number, nB: number): number {
  return 1.959963984540054 * Math.sqrt((nA + nB + 1) / (12 * nA * nB));
}

/** The AUROC of telling held-out from training images by `score` (higher = more likely held out). */
export function membershipScore(train: readonly number[], heldOut: readonly number[]): MembershipScore {
  const mean = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
  const auroc = binaryAuc([...train, ...heldOut], [...train.map(() => false), ...heldOut.map(() => true)]);
  return { auroc, train_mean: mean(train), heldout_mean: mean(heldOut) };
}

/** Scores `train` and `heldOut` images (the model's side, labels for a conditional model) by -ELBO and reconstruction error. */
export async function membershipInference(
  model: VaeModel,
  train: LabelledImages,
  heldOut: LabelledImages,
  seed: number,
): Promise<MembershipInference> {
  const pixelValues = train.size * train.size * train.channels;
  const trainRows = await perImageReconstruction(model, train, seed);
  const heldOutRows = await perImageReconstruction(model, heldOut, seed);
  const variance = sharedDecoderVariance([...trainRows.sampledSse, ...heldOutRows.sampledSse], pixelValues);
  return {
    n_train: train.n,
    n_heldout: heldOut.n,
    decoder_sigma: Math.sqrt(variance),
    chance_halfwidth_95: chanceHalfWidth(train.n, heldOut.n),
    neg_elbo: membershipScore(perImageNelbo(trainRows, variance, pixelValues), perImageNelbo(heldOutRows, variance, pixelValues)),
    recon_mse: membershipScore(trainRows.mse, heldOutRows.mse),
  };
}
