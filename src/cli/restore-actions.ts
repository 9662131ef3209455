// What `medvae impute` and `medvae score` do once their flags have parsed (restore-commands.ts
// registers them). Loaded only when one of them runs: it brings TF.js.
import { initBackend } from '../backend/index.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import { loadRun } from '../run/checkpoint.ts';
import { anomalyAuroc, checkNormalClasses, parseNormal } from '../restore/anomaly.ts';
import { harmonicInpaint, meanFill } from '../restore/baselines.ts';
import { imputeImages, type Imputation } from '../restore/impute.ts';
import { IMPUTATION_ROWS, imputationArrays, imputationRows } from '../restore/impute-output.ts';
import { maskSource, parseMaskSpec } from '../restore/mask.ts';
import { finiteMean, maskedPsnrPerImage, maskedSsimPerImage } from '../restore/metrics.ts';
import { createCounter } from '../restore/progress.ts';
import { chunksOf, readImages, selectImages, sigmaImages } from '../restore/run-data.ts';
import { requireEncoder } from '../restore/samplers.ts';
import type { ImputeMethod } from '../restore/impute-methods.ts';
import { SCORE_NAMES, scoreImages } from '../restore/score.ts';
import { writeScoresCsv, type ScoreTable } from '../restore/scores-csv.ts';
import { fitDecoderSigma } from '../restore/sigma.ts';
import { integerFlag, UsageError } from './errors.ts';
import { backendFromFlags, type BackendFlags } from './backend-flags.ts';
import { medmnistArrays, parseOut, rowsOutput, writeImageOutput } from './image-output.ts';
import { printSummary } from './summary-table.ts';
import { runCheckpointOf, type RunFlagValues } from './run-option.ts';
import { GRID_COLUMNS } from './restore-commands.ts';
import { concatFloat32 } from '../util/float32.ts';

/** Images read and processed at once: bounds memory whatever the split's size. */
const CHUNK = 256;

interface CommonFlags extends BackendFlags, RunFlagValues {
  data?: string;
  split: string;
  n?: string;
  seed: string;
  batch: string;
  sigma: string;
  debug?: boolean;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

async function openRunFor(flags: CommonFlags): Promise<{ config: ExperimentConfig; model: VaeModel }> {
  const checkpoint = runCheckpointOf(flags);
  const { choice, options } = backendFromFlags(flags);
  await initBackend(choice, undefined, options);
  const { config, model } = await loadRun(checkpoint);
  requireEncoder(model);
  return { config, model };
}

/** --sigma, or the maximum-likelihood decoder sigma on the validation split (sigma.ts). */
async function decoderSigma(flags: CommonFlags, config: ExperimentConfig, model: VaeModel): Promise<number> {
  if (flags.sigma !== 'auto') {
    const s = Number(flags.sigma);
    if (!(s > 0)) throw new UsageError(`--sigma must be 'auto' or a number > 0 ([-1, 1] units), got ${flags.sigma}`);
    return s;
  }
  const { images, description } = await sigmaImages(config, Number(flags.seed), flags.data);
  const sigma = await fitDecoderSigma(model, images, Number(flags.seed), integerFlag('--batch', flags.batch, 1));
  log(`decoder sigma ${sigma.toPrecision(4)} ([-1, 1] units): maximum likelihood on ${images.n} images of ${description}`);
  return sigma;
}

export async function imputeCommand(
  flags: CommonFlags & { mask: string; method: ImputeMethod; iters: string; samples: string; out: string; json?: boolean },
): Promise<void> {
  const iters = integerFlag('--iters', flags.iters, 1);
  const samples = integerFlag('--samples', flags.samples, 1);
  const batch = integerFlag('--batch', flags.batch, 1);
  const seed = integerFlag('--seed', flags.seed, 0);
  const spec = parseMaskSpec(flags.mask);
  const out = parseOut(flags.out);
  const { config, model } = await openRunFor(flags);
  try {
    const { split, indices, classes } = await selectImages(config, {
      data: flags.data,
      split: flags.split,
      n: flags.n === undefined ? 16 : integerFlag('--n', flags.n, 1),
      seed,
    });
    // Every mask up front (one byte per pixel): a bad one fails before any model work.
    let allMasks: Uint8Array;
    let sigma: number;
    try {
      allMasks = (await maskSource(spec, config.model.image_size, seed))(0, indices.length);
      sigma = await decoderSigma(flags, config, model);
    } catch (e) {
      await split.close();
      throw e;
    }
    const pixels = config.model.image_size ** 2;
    const counter = createCounter(`impute (${flags.method}, ${iters} iterations x ${samples} chains)`, indices.length, log);
    const parts: { data: LabelledImages; masks: Uint8Array; result: Imputation }[] = [];
    try {
      let first = 0;
      for (const chunk of chunksOf(indices, CHUNK)) {
        const data = await readImages(config, split, chunk);
        const masks = allMasks.subarray(first * pixels, (first + chunk.length) * pixels);
        parts.push({
          data,
          masks,
          result: await imputeImages(model, data, masks, {
            method: flags.method,
            iters,
            samples,
            sigma,
            seed,
            batch,
            firstIndex: first,
            counter,
          }),
        });
        first += chunk.length;
      }
    } finally {
      await split.close();
    }
    counter.done();
    const all = {
      images: concatFloat32(parts.map((p) => p.data.images)),
      masks: allMasks,
      mean: concatFloat32(parts.map((p) => p.result.mean)),
      spread: concatFloat32(parts.map((p) => p.result.spread)),
      samples: Array.from({ length: samples }, (_, s) => concatFloat32(parts.map((p) => p.result.samples[s]!))),
    };
    const shape = { n: indices.length, size: config.model.image_size, channels: config.model.in_channels };
    const target = { data: all.images, ...shape };
    const set = { ...all, ...shape };
    const wrote = await writeImageOutput(
      out,
      rowsOutput(IMPUTATION_ROWS, (count) => imputationRows(set, count), shape, {
        gridColumns: GRID_COLUMNS,
        npz: () => {
          const { images, members } = imputationArrays(set);
          const labels = Uint8Array.from(classes, (c) => c ?? 0);
          return medmnistArrays(flags.split, { data: images, ...shape }, labels, members);
        },
      }),
    );
    const acceptance = parts.reduce((s, p) => s + (p.result.acceptance ?? 0) * p.data.n, 0) / indices.length;
    const summary = {
      method: flags.method,
      mask: flags.mask,
      n: indices.length,
      iters,
      samples,
      decoder_sigma: sigma,
      acceptance: flags.method === 'mwg' ? acceptance : null,
      psnr_missing: finiteMean(maskedPsnrPerImage(all.mean, target, all.masks)),
      ssim_missing: finiteMean(await maskedSsimPerImage(all.mean, target, all.masks)),
      mean_fill_psnr_missing: finiteMean(maskedPsnrPerImage(meanFill(target, all.masks), target, all.masks)),
      harmonic_psnr_missing: finiteMean(maskedPsnrPerImage(harmonicInpaint(target, all.masks), target, all.masks)),
    };
    printSummary(
      flags.json,
      summary,
      `impute ${flags.mask} by ${flags.method}: ${indices.length} images of ${flags.split}, ${iters} iterations x ${samples} chains, ` +
        `decoder sigma ${sigma.toPrecision(4)}${flags.method === 'mwg' ? `, acceptance ${acceptance.toFixed(3)}` : ''}; on the missing pixels:`,
      [
        {
          metric: 'psnr_missing (dB)',
          model: summary.psnr_missing,
          baselines: [
            ['mean fill', summary.mean_fill_psnr_missing],
            ['harmonic', summary.harmonic_psnr_missing],
          ],
          digits: 2,
        },
        { metric: 'ssim_missing', model: summary.ssim_missing, baselines: [], digits: 4 },
      ],
    );
    log(`wrote ${wrote}`);
  } finally {
    model.dispose();
  }
}

export async function scoreCommand(flags: CommonFlags & { samples: string; normal?: string; out: string }): Promise<void> {
  const samples = integerFlag('--samples', flags.samples, 1);
  const batch = integerFlag('--batch', flags.batch, 1);
  const seed = integerFlag('--seed', flags.seed, 0);
  const normal = flags.normal === undefined ? undefined : parseNormal(flags.normal);
  const { config, model } = await openRunFor(flags);
  try {
    const { split, indices, classes } = await selectImages(config, {
      data: flags.data,
      split: flags.split,
      n: flags.n === undefined ? undefined : integerFlag('--n', flags.n, 1),
      seed,
    });
    const table: ScoreTable = { index: indices, label: classes, neg_elbo: [], neg_iwae: [], recon_mse: [] };
    try {
      // Checked before any work: a wrong class should not cost a scoring run.
      if (normal) checkNormalClasses(classes, normal, split.labelNames);
      const sigma = await decoderSigma(flags, config, model);
      const counter = createCounter(`score (K=${samples})`, indices.length, log);
      let first = 0;
      for (const chunk of chunksOf(indices, CHUNK)) {
        const data = await readImages(config, split, chunk);
        const s = await scoreImages(model, data, { sigma, samples, seed, batch, firstIndex: first, counter });
        for (const k of SCORE_NAMES) table[k].push(...s[k]);
        first += chunk.length;
      }
      counter.done();
      writeScoresCsv(flags.out, table);
      const summary: Record<string, unknown> = { n: indices.length, samples, decoder_sigma: sigma, split: split.description };
      for (const k of SCORE_NAMES) summary[`mean_${k}`] = finiteMean(table[k]);
      if (normal) {
        summary['normal'] = normal;
        summary['auroc'] = Object.fromEntries(SCORE_NAMES.map((k) => [k, anomalyAuroc(table[k], classes, normal)]));
      }
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      log(`wrote ${flags.out}: ${indices.length} rows`);
    } finally {
      await split.close();
    }
  } finally {
    model.dispose();
  }
}
