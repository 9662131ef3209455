// Using a trained run: `medvae sample` (a synthetic dataset), `reconstruct`, `denoise`, `interpolate`.
import * as tf from '@tensorflow/tfjs';
import type { Command } from 'commander';
import { join } from 'node:path';
import { loadRun, type LoadedRun } from '../train/checkpoint.ts';
import { initBackend } from '../backend/index.ts';
import type { Batch, LabelKind } from '../data/types.ts';
import { writeNpz } from '../data/npz-writer.ts';
import { stackFromTensor, writeGrid, writePng, type ImageStack } from '../train/images.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { readImages } from '../generate/read-images.ts';
import { sample, SampleOptionError, type SampledImages } from '../generate/sample.ts';
import { runCommand, UsageError } from './errors.ts';
import { allowSoftwareGpuOption, backendFromFlags, backendOption, type BackendFlags } from './backend-flags.ts';
import { psnrOf } from '../eval/reconstruction.ts';

interface RunFlags extends BackendFlags {
  run: string;
  debug?: boolean;
  seed: string;
}

async function openRun(flags: RunFlags): Promise<LoadedRun> {
  const { choice, options } = backendFromFlags(flags);
  await initBackend(choice, undefined, options);
  return loadRun(flags.run);
}

function inputs(batch: Batch): { images: tf.Tensor4D; labels?: tf.Tensor2D } {
  const images = tf.tensor4d(batch.images, [batch.n, batch.size, batch.size, batch.channels]);
  return batch.labelWidth > 0 ? { images, labels: tf.tensor2d(batch.labels, [batch.n, batch.labelWidth]) } : { images };
}

/** PSNR in dB of images in [-1, 1], over all pixels of the stack. */
function psnr(a: Float32Array, b: Float32Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return psnrOf(se / a.length);
}

async function sampleCommand(flags: RunFlags & { n: string; label?: string; out: string; batch: string; latent: string }): Promise<void> {
  const run = await openRun(flags);
  const n = Number(flags.n);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--n must be a positive integer, got ${flags.n}`);
  if (flags.latent !== 'prior' && flags.latent !== 'fitted')
    throw new UsageError(`--latent must be prior or fitted, got '${flags.latent}'`);
  const options = {
    n,
    seed: Number(flags.seed),
    latent: flags.latent,
    batchSize: Number(flags.batch),
    log: (line: string) => process.stderr.write(`${line}\n`),
  } as const;
  let images: SampledImages;
  try {
    images = await sample(run, flags.label === undefined ? options : { ...options, label: Number(flags.label) });
  } catch (e) {
    // The library names the option; the command names its flag.
    if (e instanceof SampleOptionError) throw new UsageError(`--${e.option} ${e.detail}`);
    throw e;
  }
  const { pixels, size, channels, labels, labelWidth } = images;
  const conditional = labelWidth > 0;
  if (flags.out.endsWith('.npz')) {
    // MedMNIST layout: grey images are N x S x S, colour N x S x S x 3; labels N x L uint8
    // (class index for single-label datasets, multi-hot for multi-label ones).
    const imageShape = channels === 1 ? [n, size, size] : [n, size, size, 3];
    const labelRows = conditional ? classLabels(labels, n, labelWidth, run.state.labelKind) : new Uint8Array(n);
    const labelShape = [n, labelRows.length / n];
    const empty = (shape: number[]): { dtype: '|u1'; shape: number[]; data: Uint8Array } => ({
      dtype: '|u1',
      shape: [0, ...shape.slice(1)],
      data: new Uint8Array(0),
    });
    writeNpz(flags.out, {
      train_images: { dtype: '|u1', shape: imageShape, data: pixels },
      train_labels: { dtype: '|u1', shape: labelShape, data: labelRows },
      val_images: empty(imageShape),
      val_labels: empty(labelShape),
      test_images: empty(imageShape),
      test_labels: empty(labelShape),
    });
  } else {
    const stack: ImageStack = { data: Float32Array.from(pixels, (v) => v / 127.5 - 1), n, size, channels };
    const label = flags.label === undefined ? undefined : Number(flags.label);
    for (let k = 0; k < n; k++) {
      const cls = conditional ? String(label ?? k % labelWidth) : '';
      await writePng(join(flags.out, cls, `${String(k).padStart(6, '0')}.png`), stack, k);
    }
  }
  process.stderr.write(`wrote ${n} samples to ${flags.out}\n`);
}

/** One-hot rows back to class indices (N x 1) for single-label data; multi-hot rows stay (N x L). */
function classLabels(labels: Float32Array, n: number, width: number, kind: LabelKind): Uint8Array {
  if (kind === 'multilabel') return Uint8Array.from(labels);
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = labels.subarray(k * width, (k + 1) * width).indexOf(1);
  return out;
}

async function reconstructCommand(flags: RunFlags & { split: string; n: string; out: string; noise?: string }): Promise<void> {
  const { config, model } = await openRun(flags);
  const batch = await readImages(config, flags.split, Number(flags.n));
  const clean = inputs(batch);
  try {
    if (!flags.noise) {
      const rec = tf.tidy(() => tf.concat([clean.images, model.reconstruct(clean.images, clean.labels)], 0) as tf.Tensor4D);
      try {
        await writeGrid(flags.out, await stackFromTensor(rec), { cols: batch.n });
      } finally {
        rec.dispose();
      }
      process.stderr.write(`wrote ${flags.out}: ${batch.n} originals above their reconstructions\n`);
      return;
    }
    const match = /^gaussian:([0-9.]+)$/.exec(flags.noise);
    if (!match) throw new UsageError(`--noise must look like gaussian:SIGMA (SIGMA on the [0,1] intensity scale), got ${flags.noise}`);
    const sigma = Number(match[1]);
    // Noise on the [0,1] scale is twice as large on the model's [-1,1] scale.
    const noisy = tf.tidy(
      () =>
        clean.images
          .add(
            stepNoise(Number(flags.seed), Stream.eval, 0)
              .normal(clean.images.shape)
              .mul(2 * sigma),
          )
          .clipByValue(-1, 1) as tf.Tensor4D,
    );
    const grid = tf.tidy(() => tf.concat([clean.images, noisy, model.reconstruct(noisy, clean.labels)], 0) as tf.Tensor4D);
    noisy.dispose();
    let stack: ImageStack;
    try {
      // The three rows in one read: clean, noisy, denoised.
      stack = await stackFromTensor(grid);
    } finally {
      grid.dispose();
    }
    const per = stack.size * stack.size * stack.channels * batch.n;
    const [cleanValues, noisyValues, denoisedValues] = [0, 1, 2].map((r) => stack.data.subarray(r * per, (r + 1) * per));
    const before = psnr(cleanValues!, noisyValues!);
    const after = psnr(cleanValues!, denoisedValues!);
    await writeGrid(flags.out, stack, { cols: batch.n });
    process.stdout.write(`${JSON.stringify({ noise: flags.noise, images: batch.n, psnr_noisy_db: before, psnr_denoised_db: after })}\n`);
    process.stderr.write(
      `PSNR noisy ${before.toFixed(2)} dB -> denoised ${after.toFixed(2)} dB; wrote ${flags.out} (clean, noisy, denoised rows)\n`,
    );
  } finally {
    tf.dispose([clean.images, clean.labels] as tf.TensorContainer);
  }
}

async function interpolateCommand(flags: RunFlags & { split: string; steps: string; pairs: string; out: string }): Promise<void> {
  const { config, model } = await openRun(flags);
  const pairs = Number(flags.pairs);
  const steps = Number(flags.steps);
  const batch = await readImages(config, flags.split, 2 * pairs);
  const x = inputs(batch);
  const rows = tf.tidy(() => {
    const { mu } = model.encode(x.images, x.labels, false);
    const out: tf.Tensor4D[] = [];
    for (let p = 0; p < pairs; p++) {
      const a = mu.slice([2 * p, 0], [1, -1]);
      const b = mu.slice([2 * p + 1, 0], [1, -1]);
      const t = tf.linspace(0, 1, steps).reshape([steps, 1]);
      const z = a.mul(tf.sub(1, t)).add(b.mul(t)) as tf.Tensor2D;
      const labels = x.labels ? (tf.tile(x.labels.slice([2 * p, 0], [1, -1]), [steps, 1]) as tf.Tensor2D) : undefined;
      out.push(model.decode(z, labels, false));
    }
    return tf.concat(out, 0) as tf.Tensor4D;
  });
  try {
    await writeGrid(flags.out, await stackFromTensor(rows), { cols: steps });
  } finally {
    tf.dispose([rows, x.images, x.labels] as tf.TensorContainer);
  }
  process.stderr.write(`wrote ${flags.out}: ${pairs} rows of ${steps} images between pairs of real images\n`);
}

export function registerGenerateCommands(program: Command): void {
  const common = (cmd: Command): Command =>
    cmd
      .requiredOption('--run <dir>', 'run directory (its newest checkpoint is used)')
      .addOption(backendOption())
      .addOption(allowSoftwareGpuOption())
      .option('--seed <n>', 'seed of the noise', '0')
      .option('--debug', 'print stack traces on errors');
  common(program.command('sample').description('write a synthetic dataset: an npz in the MedMNIST layout, or a PNG folder by class'))
    .option('--n <n>', 'number of images', '1000')
    .option('--label <k>', 'class of every image (conditional models); default: classes in turn')
    .option('--batch <n>', 'images generated at once', '64')
    .option(
      '--latent <source>',
      "prior (N(0, I)) or fitted (a Gaussian fitted to the training images' latents: fewer off-manifold samples)",
      'prior',
    )
    .requiredOption('--out <file.npz|dir>', 'output npz file or folder')
    .action((f) => runCommand(Boolean(f.debug), () => sampleCommand(f)));
  common(program.command('reconstruct').description('a grid of real images above their reconstructions'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'number of images', '16')
    .requiredOption('--out <file.png>', 'output PNG')
    .action((f) => runCommand(Boolean(f.debug), () => reconstructCommand(f)));
  common(program.command('denoise').description('clean noisy images through the latent space; prints PSNR before and after'))
    .option('--noise <spec>', 'noise model, gaussian:SIGMA on the [0,1] scale', 'gaussian:0.1')
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'number of images', '16')
    .requiredOption('--out <file.png>', 'output PNG (clean, noisy, denoised rows)')
    .action((f) => runCommand(Boolean(f.debug), () => reconstructCommand(f)));
  common(program.command('interpolate').description('decode straight lines in latent space between pairs of real images'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--pairs <n>', 'number of pairs', '4')
    .option('--steps <n>', 'images per row', '8')
    .requiredOption('--out <file.png>', 'output PNG')
    .action((f) => runCommand(Boolean(f.debug), () => interpolateCommand(f)));
}
