// Images from the model's prior, decoded in chunks, with no file or dataset access: what the web
// explorer draws in the browser. `priorNoise` is the one definition of a chunk's noise, which
// `medvae sample --latent prior` (sample.ts) uses too, so the same seed gives the same images in
// both places. A temperature scales the Gaussian draws (1 = the prior itself).
import * as tf from '@tensorflow/tfjs';
import type { StepNoise, VaeModel } from '../models/base.ts';
import { stepNoise, Stream } from '../util/rng.ts';

/** Chunk size of `medvae sample`'s --batch default: the chunk keys the noise, so it is part of the draw. */
export const PRIOR_CHUNK = 64;

/** `noise` with every Gaussian draw multiplied by `temperature` (uniform draws, e.g. categories, unchanged). */
export function temperedNoise(noise: StepNoise, temperature: number): StepNoise {
  if (temperature === 1) return noise;
  return { normal: (shape) => tf.tidy(() => tf.mul(noise.normal(shape), temperature)), uniform: (shape) => noise.uniform(shape) };
}

/** The noise of prior chunk `chunk` of a draw with `seed`, at `temperature`. */
export function priorNoise(seed: number, chunk: number, temperature = 1): StepNoise {
  return temperedNoise(stepNoise(seed, Stream.sample, 1, chunk), temperature);
}

export interface PriorDraw {
  n: number;
  seed: number;
  /** n x labelWidth label rows for the conditional model, else empty. */
  labels: Float32Array;
  labelWidth: number;
  temperature?: number;
  batchSize?: number;
}

/** n images NHWC in [-1, 1] from the prior, read back chunk by chunk. */
export async function drawFromPrior(model: VaeModel, draw: PriorDraw): Promise<Float32Array> {
  const { n, seed, labels, labelWidth, temperature = 1, batchSize = PRIOR_CHUNK } = draw;
  const { image_size: size, in_channels: channels } = model.config;
  const out = new Float32Array(n * size * size * channels);
  for (let start = 0, chunk = 0; start < n; start += batchSize, chunk++) {
    const m = Math.min(batchSize, n - start);
    const rows = labels.subarray(start * labelWidth, (start + m) * labelWidth);
    const images = tf.tidy(() => {
      const cond = labelWidth > 0 ? tf.tensor2d(rows, [m, labelWidth]) : undefined;
      return model.sample(m, priorNoise(seed, chunk, temperature), cond);
    });
    try {
      out.set((await images.data()) as Float32Array, start * size * size * channels);
    } finally {
      images.dispose();
    }
  }
  return out;
}
