// Multiple imputation of a set of images, batch by batch: S independent chains per image (samples.ts)
// from the observed-mean fill; the result is their per-value mean and standard deviation.
import { tf } from '../util/tf.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { asImages, labelsFor, ranges, sliceTensor } from './batches.ts';
import { meanFill } from './baselines.ts';
import type { Counter } from './progress.ts';
import { IMPUTE_METHODS, runChain, type ImputeMethod } from './samplers.ts';

const IMPUTE_KEY = 30;

export interface ImputeOptions {
  method: ImputeMethod;
  iters: number;
  samples: number;
  sigma: number;
  seed: number;
  batch: number;
  /** Index of data's first image in its split: keys the noise so chunks of a split agree. */
  firstIndex?: number;
  counter?: Counter;
}

export interface Imputation {
  /** Mean over the S imputations (observed pixels: the input's values), NHWC like the input. */
  mean: Float32Array;
  /** Per-value standard deviation over the S imputations (0 at observed pixels). */
  spread: Float32Array;
  /** Each imputation, S arrays like `mean`. */
  samples: Float32Array[];
  /** MWG's acceptance rate over all chains; null for pseudo-Gibbs. */
  acceptance: number | null;
}

/** `masks`: n x size x size, 1 = missing. */
export async function imputeImages(model: VaeModel, data: LabelledImages, masks: Uint8Array, opts: ImputeOptions): Promise<Imputation> {
  const { size, channels } = data;
  if (!Number.isInteger(opts.samples) || opts.samples < 1) throw new RangeError(`--samples must be an integer >= 1, got ${opts.samples}`);
  const init = meanFill(asImages(data), masks);
  const samples = Array.from({ length: opts.samples }, () => new Float32Array(data.images.length));
  let accepted = 0;
  const per = size * size * channels;
  for (const { start, count } of ranges(data.n, opts.batch)) {
    const images = sliceTensor(data.images, start, count, size, channels);
    const start0 = sliceTensor(init, start, count, size, channels);
    const missing = tf.tensor4d(masks.subarray(start * size * size, (start + count) * size * size), [count, size, size, 1], 'float32');
    const labels = labelsFor(model, data, start, count);
    try {
      for (let s = 0; s < opts.samples; s++) {
        const noise = stepNoise(opts.seed, Stream.eval, IMPUTE_KEY, IMPUTE_METHODS.indexOf(opts.method), (opts.firstIndex ?? 0) + start, s);
        const result = await runChain(
          model,
          { images, missing, init: start0, labels },
          { method: opts.method, iters: opts.iters, sigma: opts.sigma, noise },
        );
        try {
          samples[s]!.set(await result.imputed.data(), start * per);
        } finally {
          result.imputed.dispose();
        }
        accepted += (result.acceptance ?? 0) * count;
      }
    } finally {
      tf.dispose([images, start0, missing, labels] as tf.TensorContainer);
    }
    opts.counter?.advance(count);
  }
  const mean = new Float32Array(data.images.length);
  const spread = new Float32Array(data.images.length);
  for (let i = 0; i < mean.length; i++) {
    let sum = 0;
    for (const s of samples) sum += s[i]!;
    const m = sum / samples.length;
    let sq = 0;
    for (const s of samples) sq += (s[i]! - m) ** 2;
    // Observed values are exact copies, so averaging them must not round them.
    mean[i] = sq === 0 ? samples[0]![i]! : m;
    spread[i] = Math.sqrt(sq / samples.length);
  }
  return { mean, spread, samples, acceptance: opts.method === 'mwg' ? accepted / (data.n * opts.samples) : null };
}
