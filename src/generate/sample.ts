// Synthetic images from a trained run: latents from the prior or from the checkpoint's density of
// the aggregate posterior (a Gaussian or a mixture, per class for the conditional model), decoded in
// chunks. By default the sampler `medvae eval` found closest to the validation images for these
// weights (sampler.json), else the density's own preference (held-out latent log-likelihood).
import type { LoadedRun } from '../run/checkpoint.ts';
import { denormalize } from '../run/images.ts';
import { sampleLabels } from '../models/sample-labels.ts';
import { openDataset } from '../data/open.ts';
import { drawChunks } from '../models/latent-draw.ts';
import type { LatentDensity, LatentSampler } from '../models/latent-density.ts';
import { readSamplerChoice } from '../run/sampler-choice.ts';
import { LATENT_SOURCES, type LatentSource } from '../models/latent-sampler.ts';
import { fitLatentDensityOf } from '../eval/latent-fit.ts';
import { readLabelledImages } from '../eval/images.ts';
import { heldOutIndices, readLatentFitImages } from '../eval/run-eval.ts';

export type { LatentSource };

/** Validation images that choose an on-demand mixture's size. */
const ON_DEMAND_VALIDATION = 512;

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
  /** Where the latents came from. */
  sampler: LatentSampler;
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

/** The checkpoint's latent density, or for a checkpoint without one a fit from the training data now. */
async function densityOf(run: LoadedRun, seed: number, log: (line: string) => void): Promise<LatentDensity> {
  if (run.latentDensity) return run.latentDensity;
  const { config, model } = run;
  const split = await openDataset(config.data, config.data.split);
  const validation = await openDataset(config.data, config.data.val_split).catch(() => undefined);
  try {
    const images = await readLatentFitImages(split, config, seed);
    const held = validation
      ? await readLabelledImages(
          validation,
          heldOutIndices(validation.length, ON_DEMAND_VALIDATION, seed),
          config.model.image_size,
          config.model.in_channels,
          config.data.resize,
        )
      : undefined;
    log(`${run.checkpoint} has no latent density (it predates them): fitting one on ${images.n} images of ${split.description}`);
    return await fitLatentDensityOf(model, images, held, run.state.step, seed);
  } finally {
    await split.close();
    await validation?.close();
  }
}

/**
 * What a sampler was chosen by: the --latent option, `medvae eval`'s feature distances (sampler.json),
 * the density's held-out latent log-likelihood, or the prior for a checkpoint without a density.
 */
export type SamplerBasis = 'option' | 'evaluation' | 'likelihood' | 'no-density';

export interface ResolvedSampler {
  sampler: LatentSampler;
  basis: SamplerBasis;
  /** The reason in the words of `medvae sample`'s line. */
  why: string;
  /** With basis 'evaluation': the held-out split `medvae eval` measured on. */
  split?: string;
}

/** The sampler `medvae sample` uses without --latent (and the web explorer starts with). */
export function defaultSampler(run: LoadedRun): ResolvedSampler & { basis: Exclude<SamplerBasis, 'option'> } {
  const chosen = readSamplerChoice(run.runDir, run.state.step);
  if (chosen)
    return {
      sampler: chosen.sampler,
      basis: 'evaluation',
      why: `lowest Fréchet feature distance to the ${chosen.split} images (medvae eval, sampler.json)`,
      split: chosen.split,
    };
  if (run.latentDensity)
    return {
      sampler: run.latentDensity.preferred,
      basis: 'likelihood',
      why: 'highest held-out latent log-likelihood; run medvae eval to choose by feature distance',
    };
  return {
    sampler: 'prior',
    basis: 'no-density',
    why: 'the checkpoint has no latent density (it predates them); --latent gaussian fits one from the training data',
  };
}

/** The sampler a request means, and the line that says which and why. */
export function resolveSampler(run: LoadedRun, latent: LatentSource): ResolvedSampler {
  if (latent === 'fitted') return { sampler: 'gaussian', basis: 'option', why: '--latent fitted, the old name of gaussian' };
  if (latent !== 'default') return { sampler: latent, basis: 'option', why: `--latent ${latent}` };
  return defaultSampler(run);
}

export async function sample(run: LoadedRun, options: SampleOptions): Promise<SampledImages> {
  const { config, model } = run;
  const { n, seed = 0, label, latent = 'default', batchSize = 64, log = () => undefined } = options;
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
  if (!LATENT_SOURCES.includes(latent))
    throw new SampleOptionError('latent', `must be one of ${LATENT_SOURCES.join(', ')}, got '${latent}'`);
  const { sampler, why } = resolveSampler(run, latent);
  log(`sampler: ${sampler} (${why})`);
  const source = sampler === 'prior' ? { sampler } : { sampler, density: await densityOf(run, seed, log) };
  await drawChunks(model, { n, seed, labels, labelWidth, source, batchSize }, (start, data) => {
    const offset = start * size * size * channels;
    for (let i = 0; i < data.length; i++) pixels[offset + i] = denormalize(data[i]!);
  });
  return { pixels, n, size, channels, labels, labelWidth, sampler };
}
