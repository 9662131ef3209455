// Reconstruction quality of a model on held-out images, per image then averaged:
// MSE, PSNR, SSIM, MS-SSIM (valid windows, ./ssim.ts) on the posterior-mean reconstruction, and
// the negative ELBO; and the same image scores of two predictions that ignore the input (a
// constant mid-grey image, the training-set mean image), the floor a model has to beat.
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
import { tf } from '../util/tf.ts';
import type { VaeModel } from '../models/base.ts';
import { gaussianKlPerSample } from '../losses/kl.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { gatherImages } from './feature-net.ts';
import type { LabelledImages } from './images.ts';
import { evalMsSsim, evalSsim } from './ssim.ts';

/** Images are in [-1, 1]. */
export const DATA_RANGE = 2;
/** PSNR of a perfect reconstruction would be infinite; MSE is floored here (~106 dB). */
const MIN_MSE = 1e-10;

/** Per-image scores of a prediction against held-out images, averaged over the images. */
export interface ImageScores {
  /** Mean squared error per pixel value, in the model's [-1, 1] units (4x the error on [0, 1]). */
  mse: number;
  /** Mean over images of 10 log10(range^2 / MSE), range 2: the same as PSNR on [0, 1] images with peak 1. */
  psnr: number;
  ssim: number;
  ms_ssim: number;
}

/** Predictions that ignore the input, scored on the same held-out images. */
export interface ReconstructionBaselines {
  /** Every image predicted as 0 in [-1, 1] units: mid-grey. */
  constant_grey: ImageScores;
  /** Every image predicted as the per-pixel mean of the training images at the model's side. */
  train_mean: ImageScores;
}

export interface ReconstructionMetrics extends ImageScores {
  n: number;
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
  if (model.labelWidth === 0 || data.labelWidth === 0) return undefined;
  const w = data.labelWidth;
  const rows = new Float32Array(indices.length * w);
  indices.forEach((idx, k) => rows.set(data.labels.subarray(idx * w, (idx + 1) * w), k * w));
  return tf.tensor2d(rows, [indices.length, w]);
}

// Type aliases, not interfaces: tf.tidy returns only index-signature containers.
type QualityTensors = {
  mse: tf.Tensor1D;
  ssim: tf.Tensor1D;
  msSsim: tf.Tensor1D;
};

/** Per-image MSE, SSIM and MS-SSIM of `predicted` against `target` (NHWC, [-1, 1]). */
function qualityTensors(predicted: tf.Tensor4D, target: tf.Tensor4D): QualityTensors {
  return {
    mse: tf.mean(tf.square(tf.sub(predicted, target)), [1, 2, 3]) as tf.Tensor1D,
    ssim: evalSsim(predicted, target, DATA_RANGE),
    msSsim: evalMsSsim(predicted, target, DATA_RANGE),
  };
}

/** Per-image values of a batch, read back from the backend. */
type Values<T> = { [K in keyof T]: Float32Array };

/** Reads every tensor back in one asynchronous read (end to end, then split), and disposes them. */
async function readValues<T extends Record<string, tf.Tensor>>(tensors: T): Promise<Values<T>> {
  const keys = Object.keys(tensors) as (keyof T)[];
  const all = tf.tidy(() => tf.concat(keys.map((key) => tf.reshape(tensors[key], [-1]))));
  let values: Float32Array;
  try {
    values = (await all.data()) as Float32Array;
  } finally {
    tf.dispose([all, ...Object.values(tensors)]);
  }
  const out = {} as Values<T>;
  let offset = 0;
  for (const key of keys) {
    const size = tensors[key].size;
    out[key] = values.subarray(offset, offset + size);
    offset += size;
  }
  return out;
}

type BatchTensors = QualityTensors & {
  sampledSse: tf.Tensor1D;
  kl: tf.Tensor1D;
};

function evalBatch(
  model: VaeModel,
  data: LabelledImages,
  indices: number[],
  seed: number,
  batchIndex: number,
): Promise<Values<BatchTensors>> {
  return readValues(
    tf.tidy((): BatchTensors => {
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
        ...qualityTensors(mean, images),
        sampledSse: tf.sum(tf.square(tf.sub(sampled, images)), [1, 2, 3]) as tf.Tensor1D,
        kl: discreteKl.reduce<tf.Tensor>((acc, k) => tf.add(acc, k), gaussianKl) as tf.Tensor1D,
      };
    }),
  );
}

const meanOf = (xs: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

/** Batches of `batchSize` consecutive indices of `data`. */
function batchesOf(data: LabelledImages, batchSize: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start < data.n; start += batchSize)
    out.push(Array.from({ length: Math.min(batchSize, data.n - start) }, (_, k) => start + k));
  return out;
}

/** The averages of per-image scores; PSNR is the mean of the per-image PSNRs. */
function summarise(mse: readonly number[], ssim: readonly number[], msSsim: readonly number[]): ImageScores {
  return { mse: meanOf(mse), psnr: meanOf(mse.map(psnrOf)), ssim: meanOf(ssim), ms_ssim: meanOf(msSsim) };
}

/** Per-image values behind the reconstruction numbers, in the order of the images. */
export interface PerImageReconstruction {
  /** Of the posterior-mean reconstruction. */
  mse: number[];
  ssim: number[];
  msSsim: number[];
  /** Squared error summed over all values, of the reconstruction from one seeded z ~ q(z|x). */
  sampledSse: number[];
  kl: number[];
}

export async function perImageReconstruction(
  model: VaeModel,
  data: LabelledImages,
  seed: number,
  batchSize = 32,
): Promise<PerImageReconstruction> {
  const out: PerImageReconstruction = { mse: [], ssim: [], msSsim: [], sampledSse: [], kl: [] };
  for (const [b, indices] of batchesOf(data, batchSize).entries()) {
    const v = await evalBatch(model, data, indices, seed, b);
    out.mse.push(...v.mse);
    out.ssim.push(...v.ssim);
    out.msSsim.push(...v.msSsim);
    out.sampledSse.push(...v.sampledSse);
    out.kl.push(...v.kl);
  }
  return out;
}

/** The maximum-likelihood decoder variance shared by images with summed squared errors `sse` over `pixelValues` values each. */
export function sharedDecoderVariance(sse: readonly number[], pixelValues: number): number {
  return Math.max(meanOf(sse) / pixelValues, MIN_MSE);
}

/** Per image: -log N(x; decode(z), variance I) over its `pixelValues` values, + KL: the one-sample -ELBO. */
export function perImageNelbo(rows: Pick<PerImageReconstruction, 'sampledSse' | 'kl'>, variance: number, pixelValues: number): number[] {
  return rows.sampledSse.map((s, i) => gaussianNll(s, variance, pixelValues) + rows.kl[i]);
}

/** Sum over pixels of 0.5 (x - mu)^2 / sigma^2 + 0.5 log(2 pi sigma^2). */
function gaussianNll(sse: number, variance: number, pixelValues: number): number {
  return (0.5 * sse) / variance + 0.5 * pixelValues * Math.log(2 * Math.PI * variance);
}

export async function reconstructionMetrics(
  model: VaeModel,
  data: LabelledImages,
  seed: number,
  batchSize = 32,
): Promise<ReconstructionMetrics> {
  const rows = await perImageReconstruction(model, data, seed, batchSize);
  const pixelValues = data.size * data.size * data.channels;
  const variance = sharedDecoderVariance(rows.sampledSse, pixelValues);
  const reconNll = meanOf(rows.sampledSse.map((s) => gaussianNll(s, variance, pixelValues)));
  const klMean = meanOf(rows.kl);
  return {
    n: data.n,
    ...summarise(rows.mse, rows.ssim, rows.msSsim),
    nelbo: reconNll + klMean,
    recon_nll: reconNll,
    kl: klMean,
    decoder_sigma: Math.sqrt(variance),
  };
}

/** The scores of predicting the one image `prediction` (size x size x channels) for every image of `data`. */
export async function constantPredictionScores(prediction: Float32Array, data: LabelledImages, batchSize = 32): Promise<ImageScores> {
  if (prediction.length !== data.size * data.size * data.channels) {
    throw new RangeError(
      `a ${data.size}x${data.size}x${data.channels} prediction has ${data.size * data.size * data.channels} values, got ${prediction.length}`,
    );
  }
  const mse: number[] = [];
  const ssimValues: number[] = [];
  const msSsimValues: number[] = [];
  for (const indices of batchesOf(data, batchSize)) {
    const v = await readValues(
      tf.tidy(() => {
        const one = tf.tensor4d(prediction, [1, data.size, data.size, data.channels]);
        return qualityTensors(tf.tile(one, [indices.length, 1, 1, 1]), gatherImages(data, indices));
      }),
    );
    mse.push(...v.mse);
    ssimValues.push(...v.ssim);
    msSsimValues.push(...v.msSsim);
  }
  return summarise(mse, ssimValues, msSsimValues);
}

/** The constant mid-grey image and the training-mean image, scored on `data`. */
export async function reconstructionBaselines(data: LabelledImages, trainMean: Float32Array): Promise<ReconstructionBaselines> {
  return {
    constant_grey: await constantPredictionScores(new Float32Array(trainMean.length), data),
    train_mean: await constantPredictionScores(trainMean, data),
  };
}
