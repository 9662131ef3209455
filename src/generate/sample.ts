// Synthetic images from a trained run: latents from the prior or from a Gaussian fitted to the
// training split's aggregate posterior (per class for the conditional model), decoded in chunks.
import * as tf from '@tensorflow/tfjs';
import type { LoadedRun } from '../run/checkpoint.ts';
import { denormalize } from '../run/images.ts';
import { sampleLabels } from '../models/sample-labels.ts';
import { openDataset } from '../data/open.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { priorNoise } from './prior-draw.ts';
import { drawLatentsFor, fitLatents, normalFrom, type FittedLatents } from '../eval/latent-fit.ts';
import { readLatentFitImages } from '../eval/run-eval.ts';

export type LatentSource = 'prior' | 'fitted';

export interface SampleOptions {
  n: number;
  /** Same seed, same images. */
  seed?: number;
  /** Conditional model only: every image of this class; absent, classes in turn. */
  label?: number;
  latent?: LatentSource;
  /** Images decoded at once (memory bound). */
  batchSize?: number;
  log?: (line: string) => void;
}

/** uint8 images NHWC and, for the conditional model, their one-hot class rows (N x labelWidth). */
export interface SampledImages {
  pixels: Uint8Array;
  n: number;
  size: number;
  channels: 1 | 3;
  labels: Float32Array;
  labelWidth: number;
}

/** A sampling request the run cannot serve (a label without a conditional model, fitted latents without Gaussian ones). */
export class SampleOptionError extends Error {
  constructor(
    readonly option: 'n' | 'label' | 'latent',
    readonly detail: string,
  ) {
    super(`${option} ${detail}`);
    this.name = 'SampleOptionError';
  }
}

async function fittedLatents(run: LoadedRun, seed: number, log: (line: string) => void): Promise<FittedLatents> {
  const { config, model } = run;
  if (!model.gaussianLatent)
    throw new SampleOptionError('latent', `fitted needs a Gaussian latent; this run is ${config.model.name} (use prior)`);
  const split = await openDataset(config.data, config.data.split);
  try {
    const images = await readLatentFitImages(split, config, seed);
    log(`fitting the aggregate posterior on ${images.n} images of ${split.description}`);
    return await fitLatents(model, images);
  } finally {
    await split.close();
  }
}

export async function sample(run: LoadedRun, options: SampleOptions): Promise<SampledImages> {
  const { config, model } = run;
  const { n, seed = 0, label, latent = 'prior', batchSize = 64, log = () => undefined } = options;
  if (!Number.isInteger(n) || n < 1) throw new SampleOptionError('n', `must be a positive integer, got ${n}`);
  const { labelWidth } = model;
  if (label !== undefined && (labelWidth === 0 || !Number.isInteger(label) || label < 0 || label >= labelWidth)) {
    throw new SampleOptionError(
      'label',
      labelWidth > 0
        ? `must be an integer in 0..${labelWidth - 1}, got ${label}`
        : `needs a conditional model (cvae); this run is ${config.model.name}`,
    );
  }
  const { image_size: size, in_channels: channels } = config.model;
  const pixels = new Uint8Array(n * size * size * channels);
  const labels = labelWidth > 0 ? sampleLabels(n, labelWidth, label) : new Float32Array(0);
  const fitted = latent === 'fitted' ? await fittedLatents(run, seed, log) : undefined;
  const normal = normalFrom(mulberry32(hashKeys(seed, Stream.sample, 2)));
  for (let start = 0, chunk = 0; start < n; start += batchSize, chunk++) {
    const m = Math.min(batchSize, n - start);
    const rows = labels.subarray(start * labelWidth, (start + m) * labelWidth);
    const z = fitted ? drawLatentsFor(fitted, rows, labelWidth, m, normal) : undefined;
    const out = tf.tidy(() => {
      const cond = labelWidth > 0 ? tf.tensor2d(rows, [m, labelWidth]) : undefined;
      return z ? model.decode(tf.tensor2d(z, [m, config.model.latent_dim]), cond, false) : model.sample(m, priorNoise(seed, chunk), cond);
    });
    let data: Float32Array;
    try {
      data = (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
    const offset = start * size * size * channels;
    for (let i = 0; i < data.length; i++) pixels[offset + i] = denormalize(data[i]!);
  }
  return { pixels, n, size, channels, labels, labelWidth };
}
