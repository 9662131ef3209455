// The restoration tasks of `medvae eval --tasks impute,denoise` (and bench/restore.ts): on `n`
// held-out images (the seeded subset `medvae eval` scores), imputation of a mask by both chains
// against mean fill and harmonic inpainting, and denoising at each noise level against a blur and
// a median filter tuned on the validation split; example grids beside the numbers.
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import { writeGrid } from '../run/images.ts';
import { asImages } from './batches.ts';
import { harmonicInpaint, meanFill } from './baselines.ts';
import { imputeImages } from './impute.ts';
import { maskSource, parseMaskSpec } from './mask.ts';
import { noiseName, parseNoise } from './noise.ts';
import { readImages, selectImages, sigmaImages } from './run-data.ts';
import { fitDecoderSigma } from './sigma.ts';
import { anomalyAuroc, checkNormalClasses } from './anomaly.ts';
import { histogram, type Histogram } from './histogram.ts';
import { SCORE_NAMES, scoreImages } from './score.ts';
import { finiteMean } from './metrics.ts';
import { IMPUTE_METHODS } from './samplers.ts';
import { denoiseImages, imputationTask, type DenoisingMetrics, type ImputationMetrics } from './tasks.ts';

export const RESTORE_TASKS = ['impute', 'denoise', 'score'] as const;
export type RestoreTask = (typeof RESTORE_TASKS)[number];

export const DEFAULT_MASK = 'center:0.25';
export const DEFAULT_NOISES = ['gaussian:0.05', 'gaussian:0.1', 'gaussian:0.2', 'saltpepper:0.05', 'poisson:30'];

export interface RestorationMetrics {
  split: string;
  seed: number;
  imputation?: ImputationMetrics;
  denoising?: DenoisingMetrics[];
  scores?: ScoreMetrics;
  /** Example grids written beside, file names relative to the grid folder. */
  grids: Record<string, string>;
}

export interface ScoreMetrics {
  n: number;
  samples: number;
  decoder_sigma: number;
  normal: number[] | null;
  /** Mean of each score over the images. */
  mean: Record<string, number>;
  /** AUROC of each score, the other classes against the normal ones; null without --normal. */
  auroc: Record<string, number> | null;
  histograms: Record<string, Histogram>;
}

export interface RestorationOptions {
  tasks: readonly RestoreTask[];
  split: string;
  n: number;
  seed: number;
  mask?: string;
  noises?: readonly string[];
  iters?: number;
  samples?: number;
  batch?: number;
  /** Normal classes of the score task's AUROC (none: scores and histograms only). */
  normal?: readonly number[];
  /** Importance samples of the score task's IWAE bound. */
  scoreSamples?: number;
  /** Where the example grids go (none when undefined). */
  gridDir?: string;
  log?: (line: string) => void;
}

export function parseTasks(value: string): RestoreTask[] {
  const tasks = value
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  const bad = tasks.filter((t) => !(RESTORE_TASKS as readonly string[]).includes(t));
  if (bad.length > 0)
    throw new RangeError(`--tasks ${value}: unknown task(s) ${bad.join(', ')}; expected a comma list of ${RESTORE_TASKS.join(', ')}`);
  return tasks as RestoreTask[];
}

const GRID_IMAGES = 8;

/** The first GRID_IMAGES images of each row stack, one row per stack. */
async function rowsGrid(path: string, data: LabelledImages, rows: Float32Array[]): Promise<void> {
  const cols = Math.min(GRID_IMAGES, data.n);
  const per = data.size * data.size * data.channels;
  const out = new Float32Array(rows.length * cols * per);
  rows.forEach((r, i) => out.set(r.subarray(0, cols * per), i * cols * per));
  await writeGrid(path, { data: out, n: rows.length * cols, size: data.size, channels: data.channels }, { cols });
}

export async function restorationMetrics(model: VaeModel, config: ExperimentConfig, opts: RestorationOptions): Promise<RestorationMetrics> {
  const batch = opts.batch ?? 32;
  const { split, indices, classes } = await selectImages(config, { split: opts.split, n: opts.n, seed: opts.seed });
  let test: LabelledImages;
  try {
    test = await readImages(config, split, indices);
  } finally {
    await split.close();
  }
  const { images: val } = await sigmaImages(config, opts.seed);
  const out: RestorationMetrics = { split: opts.split, seed: opts.seed, grids: {} };
  if (opts.tasks.includes('impute')) {
    const mask = opts.mask ?? DEFAULT_MASK;
    const masks = (await maskSource(parseMaskSpec(mask), test.size, opts.seed))(0, test.n);
    const sigma = await fitDecoderSigma(model, val, opts.seed, batch);
    const iters = opts.iters ?? 20;
    const samples = opts.samples ?? 1;
    opts.log?.(
      `restore: imputing ${mask} on ${test.n} images (${iters} iterations x ${samples} chains per method, decoder sigma ${sigma.toPrecision(4)})`,
    );
    out.imputation = await imputationTask(model, test, masks, {
      mask,
      methods: IMPUTE_METHODS,
      iters,
      samples,
      sigma,
      seed: opts.seed,
      batch,
      log: opts.log,
    });
    if (opts.gridDir) {
      const g = Math.min(GRID_IMAGES, test.n);
      const few: LabelledImages = {
        ...test,
        n: g,
        images: test.images.subarray(0, g * test.size * test.size * test.channels),
        labels: test.labels.subarray(0, g * test.labelWidth),
      };
      const fewMasks = masks.subarray(0, g * test.size * test.size);
      const shown = Float32Array.from(few.images, (v, i) =>
        fewMasks[Math.floor(i / test.channels)] === 1 ? (test.channels === 3 && i % 3 === 1 ? -1 : test.channels === 3 ? 1 : -1) : v,
      );
      const chains: Float32Array[] = [];
      for (const method of IMPUTE_METHODS) {
        chains.push((await imputeImages(model, few, fewMasks, { method, iters, samples, sigma, seed: opts.seed, batch })).mean);
      }
      const file = `restore-impute-${mask.replace(/[^a-z0-9.]+/gi, '-')}.png`;
      await rowsGrid(join(opts.gridDir, file), few, [
        few.images,
        shown,
        meanFill(asImages(few), fewMasks),
        harmonicInpaint(asImages(few), fewMasks),
        ...chains,
      ]);
      out.grids[`impute ${mask}: original, masked, mean fill, harmonic, ${IMPUTE_METHODS.join(', ')}`] = file;
    }
  }
  if (opts.tasks.includes('denoise')) {
    out.denoising = [];
    for (const name of opts.noises ?? DEFAULT_NOISES) {
      const spec = parseNoise(name);
      const d = await denoiseImages(model, val, test, spec, opts.seed, batch);
      const m = d.metrics;
      out.denoising.push(m);
      opts.log?.(
        `restore: denoise ${m.noise}: PSNR noisy ${m.noisy.psnr.toFixed(2)}, model ${m.model.psnr.toFixed(2)}${m.model_posterior ? ` (combined with the input ${m.model_posterior.psnr.toFixed(2)})` : ''}, blur ${m.gaussian_blur.psnr.toFixed(2)}, median ${m.median.psnr.toFixed(2)} dB`,
      );
      if (opts.gridDir) {
        // The scored images' rows themselves; rowsGrid shows their first GRID_IMAGES.
        const file = `restore-denoise-${noiseName(spec).replace(/[^a-z0-9.]+/gi, '-')}.png`;
        await rowsGrid(join(opts.gridDir, file), test, [test.images, d.noisy, d.mean, d.blurred, d.median]);
        out.grids[
          `denoise ${m.noise}: clean, noisy, model, blur (sigma ${m.gaussian_blur.sigma}), median (${m.median.window}x${m.median.window})`
        ] = file;
      }
    }
  }
  if (opts.tasks.includes('score')) out.scores = await scoreTask(model, test, val, classes, opts, batch);
  return out;
}

async function scoreTask(
  model: VaeModel,
  test: LabelledImages,
  val: LabelledImages,
  classes: (number | null)[],
  opts: RestorationOptions,
  batch: number,
): Promise<ScoreMetrics> {
  const normal = opts.normal ? [...opts.normal] : null;
  if (normal) checkNormalClasses(classes, normal, []);
  const sigma = await fitDecoderSigma(model, val, opts.seed, batch);
  const samples = opts.scoreSamples ?? 16;
  const s = await scoreImages(model, test, { sigma, samples, seed: opts.seed, batch });
  const isNormal = classes.map((c) => normal !== null && normal.includes(c ?? -1));
  return {
    n: test.n,
    samples,
    decoder_sigma: sigma,
    normal,
    mean: Object.fromEntries(SCORE_NAMES.map((k) => [k, finiteMean(s[k])])),
    auroc: normal ? Object.fromEntries(SCORE_NAMES.map((k) => [k, anomalyAuroc(s[k], classes, normal)])) : null,
    histograms: Object.fromEntries(SCORE_NAMES.map((k) => [k, histogram(s[k], isNormal)])),
  };
}
