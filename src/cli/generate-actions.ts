// What `medvae sample`, `reconstruct`, `denoise` and `interpolate` do once their flags have
// parsed (generate-commands.ts registers them). Loaded only when one of them runs: it brings TF.js.
import { tf } from '../util/tf.ts';
import { loadRun, type LoadedRun } from '../run/checkpoint.ts';
import { initBackend } from '../backend/index.ts';
import type { Batch } from '../data/types.ts';
import type { NpyInput } from '../data/npz-writer.ts';
import { stackFromTensor, type GridOptions, type ImageStack } from '../run/images.ts';
import { readImages } from '../generate/read-images.ts';
import { sample, SampleOptionError, type SampledImages } from '../generate/sample.ts';
import { integerFlag, UsageError } from './errors.ts';
import { backendFromFlags, type BackendFlags } from './backend-flags.ts';
import { imageBytes, imageFileName, medmnistArrays, medmnistLabels, parseOut, rowsOutput, writeImageOutput } from './image-output.ts';
import { printSummary } from './summary-table.ts';
import type { LabelledImages } from '../eval/images.ts';
import { NoiseSpecError } from '../restore/errors.ts';
import { noiseName, parseNoise, type NoiseSpec } from '../restore/noise.ts';
import { readImages as readSplitImages, selectImages, sigmaImages } from '../restore/run-data.ts';
import { requireEncoder } from '../restore/samplers.ts';
import { denoiseImages, noiseVariance, type Quality } from '../restore/tasks.ts';
import { runCheckpointOf, type RunFlagValues } from './run-option.ts';
import type { DenoisedChoice, SampleChoices } from './generate-commands.ts';

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

export async function sampleCommand(
  flags: RunFlags & { label?: string; out: string; batch: string },
  { n, latent }: SampleChoices,
): Promise<void> {
  // Before the backend and the checkpoint read, as the flags generate-commands.ts checked.
  const out = parseOut(flags.out);
  const run = await openRun(flags);
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

export async function reconstructCommand(flags: RunFlags & { split: string; n: string; out: string }): Promise<void> {
  const out = parseOut(flags.out);
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
  } finally {
    tf.dispose([clean.images, clean.labels] as tf.TensorContainer);
  }
}

/** --noise as restore/noise.ts reads it; a bad spec is a usage error naming the accepted forms. */
function noiseFlag(text: string): NoiseSpec {
  try {
    return parseNoise(text);
  } catch (e) {
    if (e instanceof NoiseSpecError) throw new UsageError(e.message);
    throw e;
  }
}

/** Which output is written as denoised, and the stderr line that says why. */
function denoisedOutput(choice: DenoisedChoice, spec: NoiseSpec): { use: 'mean' | 'combined'; why: string } {
  const name = noiseName(spec);
  const combined = 'mean + input, the decoder mean and the noisy input combined per value by their variances';
  if (choice === 'mean') return { use: 'mean', why: 'the decoder mean, as --denoised mean asks' };
  if (choice === 'combined') {
    if (noiseVariance(spec) === null)
      throw new UsageError(
        `--denoised combined: ${name} has no variance to combine the decoder mean and the input by (gaussian and poisson noise have one); give --denoised mean or auto`,
      );
    return { use: 'combined', why: `${combined}, as --denoised combined asks` };
  }
  return noiseVariance(spec) === null
    ? {
        use: 'mean',
        why: `the decoder mean: the default for ${name}, since salt-and-pepper noise replaces values and has no variance to combine by`,
      }
    : {
        use: 'combined',
        why: `${combined}: the default for ${name}, whose variance is known (--denoised mean writes the decoder mean alone)`,
      };
}

/**
 * `medvae denoise`: restore/tasks.ts's denoiseImages on a seeded subset of a split (the images
 * `medvae eval` picks), the decoder variance and the baselines' parameters from the validation
 * images the evaluation uses; writes clean, noisy and denoised rows and prints every output's numbers.
 */
export async function denoiseCommand(
  flags: RunFlags & { split: string; n: string; noise: string; denoised: DenoisedChoice; batch: string; out: string; json?: boolean },
): Promise<void> {
  const spec = noiseFlag(flags.noise);
  const n = integerFlag('--n', flags.n, 1);
  const batchSize = integerFlag('--batch', flags.batch, 1);
  const seed = integerFlag('--seed', flags.seed, 0);
  const output = denoisedOutput(flags.denoised, spec);
  const out = parseOut(flags.out);
  const run = await openRun(flags);
  const { config, model } = run;
  try {
    requireEncoder(model);
    const { split, indices } = await selectImages(config, { split: flags.split, n, seed });
    let test: LabelledImages;
    try {
      test = await readSplitImages(config, split, indices);
    } finally {
      await split.close();
    }
    const { images: val, description } = await sigmaImages(config, seed);
    if (flags.split === config.data.val_split)
      process.stderr.write(`note: --split ${flags.split} is also the split the decoder variance and the baselines are measured on\n`);
    const d = await denoiseImages(model, val, test, spec, seed, batchSize);
    const m = d.metrics;
    const denoised = output.use === 'combined' ? d.combined! : d.mean;
    const shape = { n: test.n, size: test.size, channels: test.channels };
    const imageShape = test.channels === 1 ? [test.n, test.size, test.size] : [test.n, test.size, test.size, 3];
    const member = (values: Float32Array): NpyInput => ({ dtype: '|u1', shape: imageShape, data: imageBytes(values) });
    const per = test.size * test.size * test.channels;
    const wrote = await writeImageOutput(
      out,
      rowsOutput(
        ['clean', 'noisy', 'denoised'],
        (count) => [test.images, d.noisy, denoised].map((r) => r.subarray(0, count * per)),
        shape,
        {
          npz: () =>
            medmnistArrays(
              flags.split,
              { data: imageBytes(denoised), ...shape },
              medmnistLabels(test.labels, test.n, test.labelWidth, test.labelKind),
              { noisy: member(d.noisy), originals: member(test.images), means: member(d.mean) },
            ),
        },
      ),
    );
    const chosen = output.use === 'combined' ? m.model_posterior! : m.model;
    const other: [string, Quality | null] = output.use === 'combined' ? ['decoder mean', m.model] : ['mean + input', m.model_posterior];
    const summary = {
      noise: m.noise,
      split: flags.split,
      images: m.n,
      seed,
      denoised: output.use,
      psnr_denoised_db: chosen.psnr,
      ssim_denoised: chosen.ssim,
      psnr_noisy_db: m.noisy.psnr,
      ssim_noisy: m.noisy.ssim,
      psnr_mean_db: m.model.psnr,
      ssim_mean: m.model.ssim,
      psnr_combined_db: m.model_posterior?.psnr ?? null,
      ssim_combined: m.model_posterior?.ssim ?? null,
      decoder_rms: m.model_posterior?.decoder_rms ?? null,
      psnr_gaussian_blur_db: m.gaussian_blur.psnr,
      ssim_gaussian_blur: m.gaussian_blur.ssim,
      gaussian_blur_sigma: m.gaussian_blur.sigma,
      psnr_median_db: m.median.psnr,
      ssim_median: m.median.ssim,
      median_window: m.median.window,
      psnr_model_on_clean_db: m.model_on_clean.psnr,
      ssim_model_on_clean: m.model_on_clean.ssim,
      val_images: val.n,
    };
    const baselines = (q: (x: Quality) => number): [string, number][] => [
      ['noisy input', q(m.noisy)],
      ...(other[1] ? [[other[0], q(other[1])] as [string, number]] : []),
      ['gaussian blur', q(m.gaussian_blur)],
      ['median', q(m.median)],
    ];
    process.stderr.write(`denoised = ${output.why}\n`);
    printSummary(
      flags.json,
      summary,
      `denoise ${m.noise}: ${m.n} images of ${flags.split} (seed ${seed}); model = ${output.use === 'combined' ? 'mean + input' : 'decoder mean'}; ` +
        `gaussian blur sigma ${m.gaussian_blur.sigma} px and median ${m.median.window}x${m.median.window} chosen by PSNR on ${val.n} images of ${description}`,
      [
        { metric: 'psnr (dB)', model: chosen.psnr, baselines: baselines((q) => q.psnr), digits: 2 },
        { metric: 'ssim', model: chosen.ssim, baselines: baselines((q) => q.ssim), digits: 4 },
      ],
    );
    process.stderr.write(`wrote ${wrote}: clean, noisy, denoised\n`);
  } finally {
    model.dispose();
  }
}

export async function interpolateCommand(flags: RunFlags & { split: string; steps: string; pairs: string; out: string }): Promise<void> {
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
