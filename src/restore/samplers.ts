// Imputation chains over the latent space, on a batch of images whose missing pixels are marked.
// Both start from the same fill of the missing pixels (the caller's, e.g. the observed mean) and
// end with the observed pixels copied back by tf.where, so they are the input's values bit for bit.
//
// pseudo-Gibbs (Rezende et al. 2014, Sec. 5): z ~ q(z | x), x_miss <- decoder mean at z, repeat.
//   It does not sample the model's conditional p(x_miss | x_obs) and can stick in poor modes.
// Metropolis-within-Gibbs (Mattei & Frellsen 2018): propose z' ~ q(z | x) and accept with
//   min(1, p(x_obs|z') p(z') q(z|x) / (p(x_obs|z) p(z) q(z'|x))), then x_miss ~ p(x_miss | z):
//   a Markov chain whose stationary law is the model's conditional, under a Gaussian decoder
//   N(decode(z), sigma^2 I) whose sigma the caller chooses (see sigma.ts).
// The imputation returned is the decoder mean at the chain's last z, E[x_miss | z_T], for both.
import { tf } from '../util/tf.ts';
import type { StepNoise, VaeModel } from '../models/base.ts';
import { ModelTaskError } from './errors.ts';
import { gaussianLogLikelihood, logPosterior, logPrior, sampleLatent } from './latent.ts';
import type { ImputeMethod } from './impute-methods.ts';

export { IMPUTE_METHODS, type ImputeMethod } from './impute-methods.ts';

export interface ChainInput {
  /** N x H x W x C in [-1, 1]; values at missing pixels are ignored. */
  images: tf.Tensor4D;
  /** N x H x W x 1, 1 where the pixel (all channels) is missing, else 0. */
  missing: tf.Tensor4D;
  /** Starting values of the missing pixels (N x H x W x C; observed values are ignored). */
  init: tf.Tensor4D;
  labels?: tf.Tensor2D;
}

export interface ChainOptions {
  method: ImputeMethod;
  iters: number;
  /** Decoder standard deviation of p(x | z), [-1, 1] units (MWG's ratio and x_miss draws). */
  sigma: number;
  noise: StepNoise;
}

export interface ChainResult {
  imputed: tf.Tensor4D;
  /** MWG: the fraction of proposals accepted over iterations and images; null for pseudo-Gibbs. */
  acceptance: number | null;
}

/** Refuses models the chains cannot condition on observed pixels with. */
export function requireEncoder(model: VaeModel): void {
  if (!model.networks['encoder']) {
    throw new ModelTaskError(
      `model '${model.kind}' has no encoder network: imputation and scoring need q(z|x); use a run of an encoder-decoder model`,
    );
  }
}

/** x where observed, `fill` where missing; the observed values are copied, not recomputed. */
function clamp(original: tf.Tensor4D, fill: tf.Tensor4D, missingFull: tf.Tensor): tf.Tensor4D {
  return tf.where(missingFull as tf.Tensor4D, fill, original);
}

/** Runs the chain on the device; the one value read back (MWG's acceptance) is read asynchronously at the end. */
export async function runChain(model: VaeModel, input: ChainInput, opts: ChainOptions): Promise<ChainResult> {
  requireEncoder(model);
  if (!Number.isInteger(opts.iters) || opts.iters < 1) throw new RangeError(`iterations must be an integer >= 1, got ${opts.iters}`);
  const channels = input.images.shape[3];
  const missingFull = tf.tidy(() => tf.cast(tf.tile(input.missing, [1, 1, 1, channels]), 'bool'));
  try {
    return opts.method === 'mwg'
      ? await metropolisWithinGibbs(model, input, opts, missingFull)
      : pseudoGibbs(model, input, opts, missingFull);
  } finally {
    missingFull.dispose();
  }
}

function pseudoGibbs(model: VaeModel, input: ChainInput, opts: ChainOptions, missingFull: tf.Tensor): ChainResult {
  let x = tf.tidy(() => clamp(input.images, input.init, missingFull));
  for (let t = 0; t < opts.iters; t++) {
    const next = tf.tidy(() => {
      const enc = model.encode(x, input.labels, false);
      const mean = model.decode(sampleLatent(enc, opts.noise), input.labels, false);
      return clamp(input.images, mean, missingFull);
    });
    x.dispose();
    x = next;
  }
  return { imputed: x, acceptance: null };
}

type MwgState = { x: tf.Tensor4D; z: tf.Tensor2D; mean: tf.Tensor4D; logObs: tf.Tensor1D; accepted: tf.Scalar };

async function metropolisWithinGibbs(model: VaeModel, input: ChainInput, opts: ChainOptions, missingFull: tf.Tensor): Promise<ChainResult> {
  const { sigma, noise, iters } = opts;
  const n = input.images.shape[0];
  const observed = tf.tidy(() => tf.sub(1, input.missing) as tf.Tensor4D);
  let state: MwgState = tf.tidy(() => {
    const x = clamp(input.images, input.init, missingFull);
    const z = sampleLatent(model.encode(x, input.labels, false), noise);
    const mean = model.decode(z, input.labels, false);
    return { x, z, mean, logObs: gaussianLogLikelihood(input.images, mean, sigma, observed), accepted: tf.scalar(0) };
  });
  for (let t = 0; t < iters; t++) {
    const next = tf.tidy((): MwgState => {
      const enc = model.encode(state.x, input.labels, false);
      const proposal = sampleLatent(enc, noise);
      const proposalMean = model.decode(proposal, input.labels, false);
      const proposalLogObs = gaussianLogLikelihood(input.images, proposalMean, sigma, observed);
      const logRatio = tf.sub(
        tf.add(tf.add(proposalLogObs, logPrior(enc, proposal)), logPosterior(enc, state.z)),
        tf.add(tf.add(state.logObs, logPrior(enc, state.z)), logPosterior(enc, proposal)),
      );
      const accept = tf.less(tf.log(noise.uniform([n])), logRatio);
      const z = tf.where(tf.reshape(accept, [n, 1]), proposal, state.z) as tf.Tensor2D;
      const mean = tf.where(tf.reshape(accept, [n, 1, 1, 1]), proposalMean, state.mean) as tf.Tensor4D;
      const logObs = tf.where(accept, proposalLogObs, state.logObs) as tf.Tensor1D;
      // Gibbs step on the missing pixels: a draw from the Gaussian decoder at the current z.
      const draw = tf.add(mean, tf.mul(noise.normal(mean.shape), sigma)) as tf.Tensor4D;
      const x = clamp(input.images, draw, missingFull);
      return { x, z, mean, logObs, accepted: tf.add(state.accepted, tf.sum(tf.cast(accept, 'float32'))) as tf.Scalar };
    });
    tf.dispose(state);
    state = next;
  }
  const imputed = tf.tidy(() => clamp(input.images, state.mean, missingFull));
  let accepted: number;
  try {
    accepted = (await state.accepted.data())[0]!;
  } catch (e) {
    imputed.dispose();
    throw e;
  } finally {
    tf.dispose([state, observed]);
  }
  return { imputed, acceptance: accepted / (n * iters) };
}
