// Reconstruction quality of a model on held-out images, per image then averaged:
// MSE, PSNR, SSIM, MS-SSIM on the posterior-mean reconstruction, and the negative ELBO.
//
// Negative ELBO convention (nats per image, lower is better):
//   -ELBO(x) = E_q(z|x)[-log N(x; decode(z), sigma^2 I)] + KL(q(z|x) || p(z))
// with one seeded z ~ q(z|x) per image, the Gaussian likelihood summed over all H*W*C pixel values
// in the model's [-1, 1] units, and one decoder variance sigma^2 shared by every image of the
// evaluation: its maximum-likelihood value, the mean squared error of the sampled reconstructions
// (the "optimal sigma" of sigma-VAE, Rybkin et al. 2021). Every model, whatever loss it trained
// with (MSE, MS-SSIM, adversarial features), is so scored under the same likelihood family, and
// the number does not depend on kld_weight. The KL is the analytic Gaussian one, plus for JointVAE
// the KL of each discrete latent to its uniform prior.
import * as tf from '@tensorflow/tfjs';
import type { VaeModel } from '../models/base.ts';
import { gaussianKlPerSample } from '../losses/kl.ts';
import { msSsim, ssim } from '../losses/ssim.ts';
import { stepNoise, Stream } from '../train/rng.ts';
import { gatherImages } from './feature-net.ts';
import type { LabelledImages } from './images.ts';

/** Images are in [-1, 1]. */
export const DATA_RANGE = 2;
/** PSNR of a perfect reconstruction would be infinite; MSE is floored here (~106 dB). */
const MIN_MSE = 1e-10;

export interface ReconstructionMetrics {
  n: number;
  /** Mean squared error per pixel value, in the model's [-1, 1] units (4x the error on [0, 1]). */
  mse: number;
  /** Mean over images of 10 log10(range^2 / MSE), range 2: the same as PSNR on [0, 1] images with peak 1. */
  psnr: number;
  ssim: number;
  ms_ssim: number;
  /** Mean negative ELBO, nats per image (see the convention above). */
  nelbo: number;
  recon_nll: number;
  kl: number;
  /** The shared decoder standard deviation of the likelihood, [-1, 1] units. */
  decoder_sigma: number;
}

export function psnrOf(mse: number): number {
  return 10 * Math.log10((DATA_RANGE * DATA_RANGE) / Math.max(mse, MIN_MSE));
}

/** Labels for a model call: only the conditional model takes them. */
export function modelLabels(model: VaeModel, data: LabelledImages, indices: readonly number[]): tf.Tensor2D | undefined {
  if (model.kind !== 'cvae' || data.labelWidth === 0) return undefined;
  const w = data.labelWidth;
  const rows = new Float32Array(indices.length * w);
  indices.forEach((idx, k) => rows.set(data.labels.subarray(idx * w, (idx + 1) * w), k * w));
  return tf.tensor2d(rows, [indices.length, w]);
}

interface BatchValues {
  mse: Float32Array;
  ssim: Float32Array;
  msSsim: Float32Array;
  sampledSse: Float32Array;
  kl: Float32Array;
}

function evalBatch(model: VaeModel, data: LabelledImages, indices: number[], seed: number, batchIndex: number): BatchValues {
  const tensors = tf.tidy(() => {
    const images = gatherImages(data, indices);
    const labels = modelLabels(model, data, indices);
    const mean = model.reconstruct(images, labels);
    const enc = model.encode(images, labels, false);
    const z = model.reparameterize(enc, stepNoise(seed, Stream.eval, 1, batchIndex));
    const sampled = model.decode(z, labels, false);
    const gaussianKl = gaussianKlPerSample(enc.mu, enc.logvar);
    // Per image, where losses/kl.ts's categoricalKl gives the batch mean: sum q log q + log K.
    const discreteKl = (enc.discreteLogits ?? []).map((logits) => {
      const logQ = tf.logSoftmax(logits);
      return tf.add(tf.sum(tf.mul(tf.exp(logQ), logQ), 1), Math.log(logits.shape[1]));
    });
    return {
      mse: tf.mean(tf.square(tf.sub(mean, images)), [1, 2, 3]),
      ssim: ssim(mean, images, { dataRange: DATA_RANGE }),
      msSsim: msSsim(mean, images, { dataRange: DATA_RANGE }),
      sampledSse: tf.sum(tf.square(tf.sub(sampled, images)), [1, 2, 3]),
      kl: discreteKl.reduce<tf.Tensor>((acc, k) => tf.add(acc, k), gaussianKl),
    };
  });
  const values: BatchValues = {
    mse: tensors.mse.dataSync() as Float32Array,
    ssim: tensors.ssim.dataSync() as Float32Array,
    msSsim: tensors.msSsim.dataSync() as Float32Array,
    sampledSse: tensors.sampledSse.dataSync() as Float32Array,
    kl: tensors.kl.dataSync() as Float32Array,
  };
  tf.dispose(Object.values(tensors));
  return values;
}

const meanOf = (xs: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

export function reconstructionMetrics(model: VaeModel, data: LabelledImages, seed: number, batchSize = 32): ReconstructionMetrics {
  const mse: number[] = [];
  const psnr: number[] = [];
  const ssimValues: number[] = [];
  const msSsimValues: number[] = [];
  const sse: number[] = [];
  const kl: number[] = [];
  for (let start = 0, b = 0; start < data.n; start += batchSize, b++) {
    const indices = Array.from({ length: Math.min(batchSize, data.n - start) }, (_, k) => start + k);
    const v = evalBatch(model, data, indices, seed, b);
    v.mse.forEach((m) => {
      mse.push(m);
      psnr.push(psnrOf(m));
    });
    ssimValues.push(...v.ssim);
    msSsimValues.push(...v.msSsim);
    sse.push(...v.sampledSse);
    kl.push(...v.kl);
  }
  const pixelValues = data.size * data.size * data.channels;
  const variance = Math.max(meanOf(sse) / pixelValues, MIN_MSE);
  // Sum over pixels of 0.5 (x - mu)^2 / sigma^2 + 0.5 log(2 pi sigma^2).
  const nll = sse.map((s) => (0.5 * s) / variance + 0.5 * pixelValues * Math.log(2 * Math.PI * variance));
  const reconNll = meanOf(nll);
  const klMean = meanOf(kl);
  return {
    n: data.n,
    mse: meanOf(mse),
    psnr: meanOf(psnr),
    ssim: meanOf(ssimValues),
    ms_ssim: meanOf(msSsimValues),
    nelbo: reconNll + klMean,
    recon_nll: reconNll,
    kl: klMean,
    decoder_sigma: Math.sqrt(variance),
  };
}
