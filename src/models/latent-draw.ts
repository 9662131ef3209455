// Images decoded from latents drawn from the model's prior or from the checkpoint's latent density,
// chunk by chunk, with no file or dataset access: the one definition of a draw, which `medvae sample`
// (sample.ts) and the web explorer in the browser both call, so the same seed gives the same images
// in both places. A temperature scales the Gaussian draws (1 = the prior or the density itself; for
// a density, the deviation from its component's mean, see `drawLatents`).
import { tf } from '../util/tf.ts';
import type { StepNoise, VaeModel } from './base.ts';
import { decoderInputWidth, drawLatents, type LatentDensity, type LatentSampler } from './latent-density.ts';
import { hashKeys, mulberry32, stepNoise, Stream } from '../util/rng.ts';

/** Chunk size of `medvae sample`'s --batch default: the chunk keys the prior's noise, so it is part of the draw. */
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

/** Where a draw's latents come from: the prior, or a fitted sampler of a latent density. */
export type DrawSource = { sampler: 'prior' } | { sampler: Exclude<LatentSampler, 'prior'>; density: LatentDensity };

export interface LatentDraw {
  n: number;
  seed: number;
  /** n x labelWidth label rows for the conditional model, else empty. */
  labels: Float32Array;
  labelWidth: number;
  source: DrawSource;
  temperature?: number;
  batchSize?: number;
}

/**
 * Decodes the draw chunk by chunk, handing each chunk's images (NHWC in [-1, 1]) and the index of
 * its first image to `take` before the next chunk is drawn.
 */
export async function drawChunks(model: VaeModel, draw: LatentDraw, take: (start: number, images: Float32Array) => void): Promise<void> {
  const { n, seed, labels, labelWidth, source, temperature = 1, batchSize = PRIOR_CHUNK } = draw;
  // One stream for the whole draw: a density's latents do not depend on the chunking.
  const uniform = mulberry32(hashKeys(seed, Stream.sample, 2));
  for (let start = 0, chunk = 0; start < n; start += batchSize, chunk++) {
    const m = Math.min(batchSize, n - start);
    const rows = labels.subarray(start * labelWidth, (start + m) * labelWidth);
    const z =
      source.sampler === 'prior'
        ? undefined
        : {
            values: drawLatents(source.density, source.sampler, rows, labelWidth, m, uniform, temperature),
            width: decoderInputWidth(source.density),
          };
    const images = tf.tidy(() => {
      const cond = labelWidth > 0 ? tf.tensor2d(rows, [m, labelWidth]) : undefined;
      return z
        ? model.decode(tf.tensor2d(z.values, [m, z.width]), cond, false)
        : model.sample(m, priorNoise(seed, chunk, temperature), cond);
    });
    try {
      take(start, (await images.data()) as Float32Array);
    } finally {
      images.dispose();
    }
  }
}

/** n images NHWC in [-1, 1], read back chunk by chunk. */
export async function drawImages(model: VaeModel, draw: LatentDraw): Promise<Float32Array> {
  const { image_size: size, in_channels: channels } = model.config;
  const per = size * size * channels;
  const out = new Float32Array(draw.n * per);
  await drawChunks(model, draw, (start, images) => out.set(images, start * per));
  return out;
}
