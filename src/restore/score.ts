// Per-image scores of how well a model explains an image (higher = more unusual), all in nats or
// [-1, 1] units, under the Gaussian decoder N(decode(z), sigma^2 I) of sigma.ts:
//   neg_elbo   E_q[-log p(x|z)] (mean over the K samples) + KL(q(z|x) || p(z)) (analytic)
//   neg_iwae   -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): an upper bound on
//              -log p(x) that tightens as K grows (Burda et al. 2016); K = 1 is a one-sample ELBO
//   recon_mse  mean squared error of the posterior-mean reconstruction (model.reconstruct)
// The VAE-GAN is scored through its encoder and decoder under this same pixel likelihood: how well
// its decoder reproduces the pixels, not the feature-space similarity it was trained with.
import { tf } from '../util/tf.ts';
import type { LabelledImages } from '../eval/images.ts';
import { gaussianKlPerSample } from '../losses/kl.ts';
import type { VaeModel } from '../models/base.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { labelsFor, ranges, sliceTensor } from './batches.ts';
import { gaussianLogLikelihood, logPosterior, logPrior, sampleLatent } from './latent.ts';
import type { Counter } from './progress.ts';
import { requireEncoder } from './samplers.ts';

const SCORE_KEY = 60;

export interface ImageScoreRows {
  neg_elbo: number[];
  neg_iwae: number[];
  recon_mse: number[];
}

export const SCORE_NAMES = ['neg_elbo', 'neg_iwae', 'recon_mse'] as const;

export interface ScoreOptions {
  sigma: number;
  samples: number;
  seed: number;
  batch: number;
  /** Index of data's first image in its split: keys the noise so chunks of a split agree. */
  firstIndex?: number;
  counter?: Counter;
}

function logMeanExp(xs: readonly number[]): number {
  const max = Math.max(...xs);
  if (!Number.isFinite(max)) return max;
  return max + Math.log(xs.reduce((s, v) => s + Math.exp(v - max), 0) / xs.length);
}

type EncodingTensors = { mu: tf.Tensor2D; logvar: tf.Tensor2D; discreteLogits: tf.Tensor2D[] };

export async function scoreImages(model: VaeModel, data: LabelledImages, opts: ScoreOptions): Promise<ImageScoreRows> {
  requireEncoder(model);
  if (!Number.isInteger(opts.samples) || opts.samples < 1) throw new RangeError(`--samples must be an integer >= 1, got ${opts.samples}`);
  const out: ImageScoreRows = { neg_elbo: [], neg_iwae: [], recon_mse: [] };
  for (const { start, count } of ranges(data.n, opts.batch)) {
    const x = sliceTensor(data.images, start, count, data.size, data.channels);
    const labels = labelsFor(model, data, start, count);
    const enc = tf.tidy((): EncodingTensors => {
      const e = model.encode(x, labels, false);
      return { mu: e.mu, logvar: e.logvar, discreteLogits: e.discreteLogits ?? [] };
    });
    // Per image: the KL, the reconstruction MSE, then each sample's log-likelihood and log-weight,
    // rows of one tensor (2 + 2K) x count, read back once per batch.
    const rows: tf.Tensor[] = [];
    let values: Float32Array;
    try {
      rows.push(
        tf.tidy(() => {
          const discreteKl = enc.discreteLogits.map((l) => {
            const logQ = tf.logSoftmax(l);
            return tf.add(tf.sum(tf.mul(tf.exp(logQ), logQ), 1), Math.log(l.shape[1]));
          });
          return discreteKl.reduce<tf.Tensor>((acc, k) => tf.add(acc, k), gaussianKlPerSample(enc.mu, enc.logvar));
        }),
        tf.tidy(() => tf.mean(tf.square(tf.sub(model.reconstruct(x, labels), x)), [1, 2, 3])),
      );
      const noise = stepNoise(opts.seed, Stream.eval, SCORE_KEY, (opts.firstIndex ?? 0) + start);
      for (let k = 0; k < opts.samples; k++) {
        const step = tf.tidy(() => {
          const z = sampleLatent(enc, noise);
          const logLik = gaussianLogLikelihood(x, model.decode(z, labels, false), opts.sigma);
          return tf.stack([logLik, tf.sub(tf.add(logLik, logPrior(enc, z)), logPosterior(enc, z))]);
        });
        rows.push(step);
      }
      const all = tf.tidy(() => tf.concat(rows.map((r) => tf.reshape(r, [-1]))));
      rows.push(all);
      values = (await all.data()) as Float32Array;
    } finally {
      tf.dispose([x, labels, enc, ...rows] as tf.TensorContainer);
    }
    const kl = values.subarray(0, count);
    const mse = values.subarray(count, 2 * count);
    const logWeights: number[][] = Array.from({ length: count }, () => []);
    const nll = new Float64Array(count);
    for (let k = 0; k < opts.samples; k++) {
      const ll = values.subarray((2 + 2 * k) * count, (3 + 2 * k) * count);
      const lw = values.subarray((3 + 2 * k) * count, (4 + 2 * k) * count);
      for (let i = 0; i < count; i++) {
        nll[i] -= ll[i]! / opts.samples;
        logWeights[i]!.push(lw[i]!);
      }
    }
    for (let i = 0; i < count; i++) {
      out.neg_elbo.push(nll[i]! + kl[i]!);
      out.neg_iwae.push(-logMeanExp(logWeights[i]!));
      out.recon_mse.push(mse[i]!);
    }
    opts.counter?.advance(count);
  }
  return out;
}
