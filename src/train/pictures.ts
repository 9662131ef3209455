// What a run shows of itself after each epoch: grids of samples from fixed noise (the same every
// epoch, so progress is visible), one from the default sampler (epoch-NNNN.png: the latent density's
// preferred one) and one from the prior (epoch-NNNN-prior.png); a grid of originals above their
// reconstructions, and a loss curve per term (SVG and PNG).
import { tf } from '../util/tf.ts';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.ts';
import type { VaeModel } from '../models/base.ts';
import type { Batch } from '../data/types.ts';
import type { LatentDensity } from '../models/latent-density.ts';
import { drawImages, type DrawSource } from '../models/latent-draw.ts';
import { stackFromTensor, svgToPng, writeGrid } from '../run/images.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { lossCurveSvg } from '../util/svg.ts';
import { readMetricsLog, termSeries } from '../run/metrics-log.ts';
import { sampleLabels } from '../models/sample-labels.ts';

export interface PictureInputs {
  model: VaeModel;
  config: ExperimentConfig;
  runDir: string;
  epoch: number;
  /** Fixed real images (first batch of epoch 0) to reconstruct every epoch. */
  preview: Batch;
  labelNames: string[];
  metricsFile: string;
  /** Images per forward pass: the training's micro-batch, which is known to fit. */
  batchSize: number;
  /** The latent density at this epoch's weights; absent, only the prior grid is drawn. */
  latentDensity?: LatentDensity;
}

const pad4 = (n: number): string => String(n + 1).padStart(4, '0');

export async function writeSampleGrid(
  model: VaeModel,
  cfg: ExperimentConfig,
  labelNames: string[],
  n: number,
  file: string,
  batchSize: number,
  density?: LatentDensity,
): Promise<void> {
  const { labelWidth } = model;
  const conditional = labelWidth > 0;
  const labels = conditional ? sampleLabels(n, labelWidth) : new Float32Array(0);
  const sampler = density?.preferred;
  const source: DrawSource = density && sampler && sampler !== 'prior' ? { sampler, density } : { sampler: 'prior' };
  // The run's seed every epoch: the same draws, so the grids show the model changing, not the noise.
  const images = await drawImages(model, { n, seed: cfg.train.seed, labels, labelWidth, source, batchSize });
  const { image_size: size, in_channels: channels } = model.config;
  const captions = conditional ? Array.from({ length: n }, (_, k) => labelNames[k % labelWidth] ?? String(k % labelWidth)) : undefined;
  await writeGrid(file, { data: images, n, size, channels: channels as 1 | 3 }, { cols: Math.ceil(Math.sqrt(n)), captions });
}

export async function writeReconstructionGrid(
  model: VaeModel,
  preview: Batch,
  labelNames: string[],
  file: string,
  batchSize: number,
): Promise<void> {
  const n = preview.n;
  const shape: [number, number, number, number] = [n, preview.size, preview.size, preview.channels];
  const both = tf.tidy(() => {
    const originals = tf.tensor4d(preview.images, shape);
    const labels = preview.labelWidth > 0 ? tf.tensor2d(preview.labels, [n, preview.labelWidth]) : undefined;
    return tf.concat([originals, model.reconstruct(originals, labels, batchSize)], 0) as tf.Tensor4D;
  });
  try {
    const captions =
      model.labelWidth > 0 && preview.labelWidth > 0
        ? Array.from({ length: 2 * n }, (_, k) => {
            const row = preview.labels.subarray((k % n) * preview.labelWidth, ((k % n) + 1) * preview.labelWidth);
            return Array.from(row)
              .flatMap((v, j) => (v > 0.5 ? [labelNames[j] ?? String(j)] : []))
              .join(',');
          })
        : undefined;
    await writeGrid(file, await stackFromTensor(both), { cols: n, captions });
  } finally {
    both.dispose();
  }
}

export async function writeLossPlots(metricsFile: string, dir: string): Promise<void> {
  for (const [name, points] of termSeries(readMetricsLog(metricsFile), 'step')) {
    const svg = lossCurveSvg([{ name, points }], { title: name, xLabel: 'step', yLabel: name });
    writeFileAtomic(join(dir, `${name}.svg`), svg);
    writeFileAtomic(join(dir, `${name}.png`), await svgToPng(svg));
  }
}

export async function writeEpochPictures(p: PictureInputs): Promise<void> {
  const n = p.config.output.sample_grid;
  const samples = join(p.runDir, 'samples', `epoch-${pad4(p.epoch)}.png`);
  await writeSampleGrid(p.model, p.config, p.labelNames, n, samples, p.batchSize, p.latentDensity);
  const prior = join(p.runDir, 'samples', `epoch-${pad4(p.epoch)}-prior.png`);
  await writeSampleGrid(p.model, p.config, p.labelNames, n, prior, p.batchSize);
  const reconstructions = join(p.runDir, 'reconstructions', `epoch-${pad4(p.epoch)}.png`);
  await writeReconstructionGrid(p.model, p.preview, p.labelNames, reconstructions, p.batchSize);
  await writeLossPlots(p.metricsFile, join(p.runDir, 'plots'));
}
