// Using a trained run: `medvae sample` (a synthetic dataset), `reconstruct`, `denoise`, `interpolate`.
// Registering them loads only their flags; what they do (generate-actions.ts) loads when one runs.
import { Option, type Command } from 'commander';
import { LATENT_SOURCES, type LatentSource } from '../models/latent-sampler.ts';
import { runCommand, UsageError } from './errors.ts';
import { allowSoftwareGpuOption, backendOption } from './backend-flags.ts';
import { OUT_FORMS } from './image-output.ts';
import { checkpointOption, RUN_HELP } from './run-option.ts';

/** What `medvae denoise --denoised` writes as the denoised images. */
const DENOISED_CHOICES = ['auto', 'mean', 'combined'] as const;
export type DenoisedChoice = (typeof DENOISED_CHOICES)[number];

/** sample's flags that need no run, checked before its code and TF.js load: a mistake in one costs nothing. */
export interface SampleChoices {
  n: number;
  latent: LatentSource;
}

function sampleChoices(flags: { n: string; latent: string }): SampleChoices {
  const n = Number(flags.n);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--n must be a positive integer, got ${flags.n}`);
  const latent = LATENT_SOURCES.find((source) => source === flags.latent);
  if (!latent) throw new UsageError(`--latent must be one of ${LATENT_SOURCES.join(', ')}, got '${flags.latent}'`);
  return { n, latent };
}

export function registerGenerateCommands(program: Command): void {
  const common = (cmd: Command): Command =>
    cmd
      .requiredOption('--run <dir>', RUN_HELP)
      .addOption(checkpointOption())
      .addOption(backendOption())
      .addOption(allowSoftwareGpuOption())
      .option('--seed <n>', 'seed of every random draw (latents, noise, the image subset)', '0')
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
    .action((f) =>
      runCommand(Boolean(f.debug), async () => {
        const choices = sampleChoices(f);
        await (await import('./generate-actions.ts')).sampleCommand(f, choices);
      }),
    );
  common(program.command('reconstruct').description('a grid of real images above their reconstructions'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'number of images', '16')
    .requiredOption('--out <grid.png|dir|file.npz>', `original and reconstructed images: ${OUT_FORMS}`)
    .action((f) => runCommand(Boolean(f.debug), async () => (await import('./generate-actions.ts')).reconstructCommand(f)));
  common(
    program
      .command('denoise')
      .description(
        "clean noisy images through the latent space, as medvae eval's denoising task does; prints PSNR and SSIM beside the noisy input's and the baselines'",
      ),
  )
    .option('--noise <spec>', 'gaussian:SIGMA, saltpepper:P or poisson:PEAK, on the [0,1] intensity scale', 'gaussian:0.1')
    .addOption(
      new Option(
        '--denoised <output>',
        'what is written as denoised: mean (the decoder mean of the noisy image), combined (mean + input: that mean and the noisy input combined per value by their variances), auto (combined where the noise has a variance, gaussian and poisson; mean for saltpepper)',
      )
        .choices([...DENOISED_CHOICES])
        .default('auto'),
    )
    .option('--split <name>', 'dataset split', 'test')
    .option('--n <n>', 'images (a seeded subset of the split, the one medvae eval picks)', '16')
    .option('--batch <n>', 'images through the model at once (bounds memory)', '32')
    .requiredOption('--out <grid.png|dir|file.npz>', `clean, noisy and denoised images (the npz adds the decoder means): ${OUT_FORMS}`)
    .option('--json', 'print the numbers as one JSON line instead of a table')
    .action((f) => runCommand(Boolean(f.debug), async () => (await import('./generate-actions.ts')).denoiseCommand(f)));
  common(program.command('interpolate').description('decode straight lines in latent space between pairs of real images'))
    .option('--split <name>', 'dataset split', 'test')
    .option('--pairs <n>', 'number of pairs', '4')
    .option('--steps <n>', 'images per row', '8')
    .requiredOption('--out <grid.png|dir|file.npz>', `a row of images per pair: ${OUT_FORMS}`)
    .action((f) => runCommand(Boolean(f.debug), async () => (await import('./generate-actions.ts')).interpolateCommand(f)));
}
