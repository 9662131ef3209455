// `medvae impute` (fill missing pixels through the latent space) and `medvae score` (per-image
// -ELBO, IWAE bound and reconstruction error, AUROC of normal classes against the rest).
// Registering them loads only their flags; what they do (restore-actions.ts) loads when one runs.
import { Option, type Command } from 'commander';
import { IMPUTE_METHODS } from '../restore/impute-methods.ts';
import { runCommand } from './errors.ts';
import { allowSoftwareGpuOption, backendOption } from './backend-flags.ts';
import { OUT_FORMS } from './image-output.ts';
import { checkpointOption, RUN_HELP } from './run-option.ts';

/** Images (columns) in impute's grid: the first 16. */
export const GRID_COLUMNS = 16;

export function registerRestoreCommands(program: Command): void {
  const common = (cmd: Command): Command =>
    cmd
      .requiredOption('--run <dir>', RUN_HELP)
      .addOption(checkpointOption())
      .option('--data <path>', "dataset file or folder (default: the run's)")
      .option('--split <name>', 'dataset split', 'test')
      .option('--seed <n>', 'seed of every random draw (image subset, masks, chains)', '0')
      .option('--batch <n>', 'images through the model at once (bounds memory)', '32')
      .option(
        '--sigma <s|auto>',
        "decoder sigma of the Gaussian likelihood, [-1, 1] units; auto: maximum likelihood on the run's validation split",
        'auto',
      )
      .addOption(backendOption())
      .addOption(allowSoftwareGpuOption())
      .option('--debug', 'print stack traces on errors');
  common(program.command('impute').description('fill missing pixels through the latent space (pseudo-Gibbs or Metropolis-within-Gibbs)'))
    .requiredOption('--mask <spec>', 'center:F, box:x,y,w,h, random:F, stripes:W,G, or a mask .png/.npz of the model image size')
    .option('--n <n>', 'images (a seeded subset of the split)', '16')
    .addOption(new Option('--method <name>', 'imputation chain').choices([...IMPUTE_METHODS]).default('mwg'))
    .option('--iters <k>', 'chain iterations', '20')
    .option('--samples <s>', 'independent chains per image (multiple imputations)', '4')
    .requiredOption(
      '--out <grid.png|dir|out.npz>',
      `original, masked, filled and spread images (the grid: the first ${GRID_COLUMNS}; the npz: the MedMNIST layout with the masks): ${OUT_FORMS}`,
    )
    .option('--json', 'print the numbers as one JSON line instead of a table')
    .action((f) => runCommand(Boolean(f.debug), async () => (await import('./restore-actions.ts')).imputeCommand(f)));
  common(
    program
      .command('score')
      .description('per-image -ELBO, IWAE bound on -log p(x) and reconstruction error; AUROC of --normal classes against the rest'),
  )
    .option('--n <n>', 'score a seeded subset of n images (default: all)')
    .option('--samples <k>', 'importance samples K of the IWAE bound', '16')
    .option('--normal <classes>', 'class indices that are normal, e.g. 0 or 0,1: prints the AUROC of each score')
    .requiredOption('--out <scores.csv>', 'one row per image')
    .action((f) => runCommand(Boolean(f.debug), async () => (await import('./restore-actions.ts')).scoreCommand(f)));
}
