// Using a trained run: `medvae sample` (a synthetic dataset), `reconstruct`, `denoise`, `interpolate`.
import { tf } from '../util/tf.ts';
import type { Command } from 'commander';
import { loadRun, type LoadedRun } from '../run/checkpoint.ts';
import { initBackend } from '../backend/index.ts';
import type { Batch } from '../data/types.ts';
import type { NpyInput } from '../data/npz-writer.ts';
import { stackFromTensor, type GridOptions, type ImageStack } from '../run/images.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { readImages } from '../generate/read-images.ts';
import { LATENT_SOURCES, sample, SampleOptionError, type SampledImages } from '../generate/sample.ts';
import { runCommand, UsageError } from './errors.ts';
import { allowSoftwareGpuOption, backendFromFlags, backendOption, type BackendFlags } from './backend-flags.ts';
import { psnrOf } from '../eval/reconstruction.ts';
import {
  imageBytes,
  imageFileName,
  medmnistArrays,
  medmnistLabels,
  OUT_FORMS,
  parseOut,
  rowsOutput,
  writeImageOutput,
} from './image-output.ts';
import { printSummary } from './summary-table.ts';
import { gaussianBlur, medianFilter } from '../restore/baselines.ts';
import { BLUR_SIGMAS, bestFilterParameter, MEDIAN_WINDOWS } from '../restore/tasks.ts';
import { checkpointOption, RUN_HELP, runCheckpointOf, type RunFlagValues } from './run-option.ts';

interface RunFlags extends BackendFlags, RunFlagValues {
  debug?: boolean;
  seed: string;
}

async function openRun(flags: RunFlags): Promise<LoadedRun> {
  const checkpoint = runCheckpointOf(flags);
  const { choice, options } = backendFromFlags(flags);
  await initBackend(choice, undefined, options);
  return loadRun(checkpoint);
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
  const out = parseOut(flags.out);
  const run = await openRun(flags);
  const n = Number(flags.n);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--n must be a positive integer, got ${flags.n}`);
  const latent = LATENT_SOURCES.find((source) => source === flags.latent);
  if (!latent) throw new UsageError(`--latent must be one of ${LATENT_SOURCES.join(', ')}, got '${flags.latent}'`);
  const options = {
    n,
    seed: Number(flags.seed),
    latent,
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
  const stack: ImageStack = { data: Float32Array.from(pixels, (v) => v / 127.5 - 1), n, size, channels };
  const classOf = (k: number): number => labels.subarray(k * labelWidth, (k + 1) * labelWidth).indexOf(1);
  const wrote = await writeImageOutput(out, {
    grid: () => {
      const options: GridOptions = { cols: Math.ceil(Math.sqrt(n)), title: `synthetic (${images.sampler} latents)` };
      if (conditional) options.captions = Array.from({ length: n }, (_, k) => String(classOf(k)));
      return { stack, options };
    },
    // Class folders for the conditional model.
    files: () => ({ stack, names: Array.from({ length: n }, (_, k) => (conditional ? `${classOf(k)}/` : '') + imageFileName(k)) }),
    // MedMNIST layout, all in the train split: labels are class indices for single-label
    // datasets, multi-hot rows for multi-label ones.
    npz: () =>
      medmnistArrays(
        'train',
        { data: pixels, n, size, channels },
        medmnistLabels(labels, n, labelWidth, conditional ? run.state.labelKind : 'none'),
      ),
  });
  process.stderr.write(`wrote ${n} samples to ${wrote}\n`);
}

/** The rows' first `count` images each, from one stack of rows of n images. */
function rowsOfStack(stack: ImageStack, rows: number, n: number): (count: number) => Float32Array[] {
  const per = stack.size * stack.size * stack.channels;
  return (count) => Array.from({ length: rows }, (_, r) => stack.data.subarray(r * n * per, (r * n + count) * per));
}

/** SIGMA of --noise gaussian:SIGMA. */
function noiseSigma(spec: string): number {
  const match = /^gaussian:([0-9.]+)$/.exec(spec);
  if (!match) throw new UsageError(`--noise must look like gaussian:SIGMA (SIGMA on the [0,1] intensity scale), got ${spec}`);
  return Number(match[1]);
}

async function reconstructCommand(
  flags: RunFlags & { split: string; n: string; out: string; noise?: string; json?: boolean },
): Promise<void> {
  const out = parseOut(flags.out);
  const sigma = flags.noise ? noiseSigma(flags.noise) : undefined;
  const run = await openRun(flags);
  const { config, model } = run;
  const batch = await readImages(config, flags.split, Number(flags.n));
  const clean = inputs(batch);
  const n = batch.n;
  const labels = medmnistLabels(batch.labels, n, batch.labelWidth, run.state.labelKind);
  const shape = { n, size: batch.size, channels: batch.channels };
  const bytesOf = (stack: ImageStack, row: number): Uint8Array =>
    imageBytes(stack.data.subarray(row * n * batch.size ** 2 * batch.channels, (row + 1) * n * batch.size ** 2 * batch.channels));
  const imageShape = batch.channels === 1 ? [n, batch.size, batch.size] : [n, batch.size, batch.size, 3];
  try {
    if (sigma === undefined) {
      const rec = tf.tidy(() => tf.concat([clean.images, model.reconstruct(clean.images, clean.labels)], 0) as tf.Tensor4D);
      let stack: ImageStack;
      try {
        stack = await stackFromTensor(rec);
      } finally {
        rec.dispose();
      }
      const wrote = await writeImageOutput(
        out,
        rowsOutput(['original', 'reconstructed'], rowsOfStack(stack, 2, n), shape, {
          npz: () =>
            medmnistArrays(flags.split, { data: bytesOf(stack, 1), ...shape }, labels, {
              originals: { dtype: '|u1', shape: imageShape, data: bytesOf(stack, 0) },
            }),
        }),
      );
      process.stderr.write(`wrote ${wrote}: ${n} originals and their reconstructions\n`);
      return;
    }
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
    const per = stack.size * stack.size * stack.channels * n;
    const [cleanValues, noisyValues, denoisedValues] = [0, 1, 2].map((r) => stack.data.subarray(r * per, (r + 1) * per));
    const before = psnr(cleanValues!, noisyValues!);
    const after = psnr(cleanValues!, denoisedValues!);
    // The classical filters at their best parameter for these very images: an upper bound on what they reach.
    const images = (data: Float32Array): ImageStack => ({ data, n, size: stack.size, channels: stack.channels });
    const sigmaBlur = bestFilterParameter(BLUR_SIGMAS, gaussianBlur, images(noisyValues!), images(cleanValues!));
    const window = bestFilterParameter(MEDIAN_WINDOWS, medianFilter, images(noisyValues!), images(cleanValues!));
    const blurred = psnr(cleanValues!, gaussianBlur(images(noisyValues!), sigmaBlur));
    const median = psnr(cleanValues!, medianFilter(images(noisyValues!), window));
    const wrote = await writeImageOutput(
      out,
      rowsOutput(['clean', 'noisy', 'denoised'], rowsOfStack(stack, 3, n), shape, {
        npz: () =>
          medmnistArrays(flags.split, { data: bytesOf(stack, 2), ...shape }, labels, {
            noisy: { dtype: '|u1', shape: imageShape, data: bytesOf(stack, 1) },
            originals: { dtype: '|u1', shape: imageShape, data: bytesOf(stack, 0) },
          }),
      }),
    );
    printSummary(
      flags.json,
      {
        noise: flags.noise,
        images: n,
        psnr_noisy_db: before,
        psnr_denoised_db: after,
        psnr_gaussian_blur_db: blurred,
        gaussian_blur_sigma: sigmaBlur,
        psnr_median_db: median,
        median_window: window,
      },
      `denoise ${flags.noise}: ${n} images of ${flags.split}, PSNR against the clean images (gaussian blur sigma ${sigmaBlur} px and median ${window}x${window}: each filter at its best parameter for these images)`,
      [
        {
          metric: 'psnr (dB)',
          model: after,
          baselines: [
            ['noisy input', before],
            ['gaussian blur', blurred],
            ['median', median],
          ],
          digits: 2,
        },
      ],
    );
    process.stderr.write(`wrote ${wrote}: clean, noisy, denoised\n`);
  } finally {
    tf.dispose([clean.images, clean.labels] as tf.TensorContainer);
  }
}

async function interpolateCommand(flags: RunFlags & { split: string; steps: string; pairs: string; out: string }): Promise<void> {
  const out = parseOut(flags.out);
  const run = await openRun(flags);
  const { config, model } = run;
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
  let stack: ImageStack;
  try {
    stack = await stackFromTensor(rows);
  } finally {
    tf.dispose([rows, x.images, x.labels] as tf.TensorContainer);
  }
  const { size, channels } = stack;
  const per = size * size * channels;
  const names = Array.from({ length: pairs }, (_, p) => `pair ${p + 1}`);
  const rowsOf = (count: number): Float32Array[] => names.map((_, p) => stack.data.subarray(p * steps * per, (p * steps + count) * per));
  // The npz, row by row: image p * steps + i is at t = i / (steps - 1) from pair p's first image
  // (the first of its `endpoints`) to its second, and has the first image's label.
  const npz = (): Record<string, NpyInput> => {
    const w = batch.labelWidth;
    const labels = new Float32Array(pairs * steps * w);
    for (let k = 0; k < pairs * steps; k++) {
      const first = 2 * Math.floor(k / steps);
      labels.set(batch.labels.subarray(first * w, (first + 1) * w), k * w);
    }
    const images = { data: imageBytes(stack.data), n: pairs * steps, size, channels };
    return medmnistArrays(flags.split, images, medmnistLabels(labels, pairs * steps, w, run.state.labelKind), {
      endpoints: {
        dtype: '|u1',
        shape: [pairs, 2, size, size, ...(channels === 3 ? [3] : [])],
        data: imageBytes(batch.images.subarray(0, 2 * pairs * per)),
      },
    });
  };
  const wrote = await writeImageOutput(
    out,
    rowsOutput(names, rowsOf, { n: steps, size, channels }, { title: 'latent interpolation', npz }),
  );
  process.stderr.write(`wrote ${wrote}: ${pairs} rows of ${steps} images between pairs of real images\n`);
}

export function registerGenerateCommands(program: Command): void {
  const common = (cmd: Command): Command =>
    cmd
      .requiredOption('--run <dir>', RUN_HELP)
      .addOption(checkpointOption())
      .addOption(backendOption())
      .addOption(allowSoftwareGpuOption())
      .option('--seed <n>', 'seed of the noise', '0')
      .option('--debug', 'print stack traces on errors');
  common(
    program
      .command('sample')
      .description('write a synthetic dataset: an npz in the MedMNIST layout, a PNG folder by class, or one grid image'),
  )
    .option('--n <n>', 'number of images', '1000')
    .option('--label <k>', 'class of every image (conditional models); default: classes in turn')
    .option('--batch <n>', 'images generated at once', '64')
    .option(
      '--latent <source>',
      "default (the sampler medvae eval found closest to the validation images, else the checkpoint's preferred), prior (N(0, I)), gaussian or mixture (the checkpoint's density of the training images' latents; fitted is gaussian's old name)",
      'default',
    )
    .requiredOption('--out <file.npz|dir|grid.png>', `output: ${OUT_FORMS}`)
    .action((f) => runCommand(Boolean(f.debug), () => sampleCommand(f)));
  common(program.command('reconstruct').description('a grid of real images above their reconstructions'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'number of images', '16')
    .requiredOption('--out <grid.png|dir|file.npz>', `original and reconstructed images: ${OUT_FORMS}`)
    .action((f) => runCommand(Boolean(f.debug), () => reconstructCommand(f)));
  common(program.command('denoise').description('clean noisy images through the latent space; prints PSNR before and after'))
    .option('--noise <spec>', 'noise model, gaussian:SIGMA on the [0,1] scale', 'gaussian:0.1')
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'number of images', '16')
    .requiredOption('--out <grid.png|dir|file.npz>', `clean, noisy and denoised images: ${OUT_FORMS}`)
    .option('--json', 'print the PSNR numbers as one JSON line instead of a table')
    .action((f) => runCommand(Boolean(f.debug), () => reconstructCommand(f)));
  common(program.command('interpolate').description('decode straight lines in latent space between pairs of real images'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--pairs <n>', 'number of pairs', '4')
    .option('--steps <n>', 'images per row', '8')
    .requiredOption('--out <grid.png|dir|file.npz>', `a row of images per pair: ${OUT_FORMS}`)
    .action((f) => runCommand(Boolean(f.debug), () => interpolateCommand(f)));
}
