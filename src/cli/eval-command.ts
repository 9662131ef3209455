// `medvae eval` and `medvae report`. Registering them loads only their flags and the evaluation's
// defaults; what they do (eval-actions.ts) loads when one runs.
import type { Command } from 'commander';
import { DEFAULT_RECIPE, DEFAULT_UTILITY_SEEDS } from '../eval/defaults.ts';
import { DEFAULT_PR_K } from '../eval/precision-recall.ts';
import { runCommand } from './errors.ts';
import { allowSoftwareGpuOption, backendOption, type BackendFlags } from './backend-flags.ts';
import { checkpointOption, RUN_HELP } from './run-option.ts';

export interface EvalFlags extends BackendFlags {
  run: string;
  checkpoint?: string;
  split: string;
  n: string;
  seed: string;
  featureSteps: string;
  prK: string;
  utilitySeeds: string;
  cacheDir?: string;
  tasks?: string;
  normal?: string;
  debug?: boolean;
}

export interface ReportFlags {
  run: string;
  compare: string[];
  out?: string;
  debug?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Where the commands print their result (the table, the written path); tests pass their own. */
export interface CommandOutput {
  write(text: string): unknown;
}

export function registerEvalCommands(program: Command, out: CommandOutput = process.stdout): void {
  program
    .command('eval')
    .description(
      'evaluate a trained run (reconstruction, sample quality, precision/recall, diversity, privacy, membership inference, TSTR); writes RUN_DIR/eval.json',
    )
    .requiredOption('--run <dir>', RUN_HELP)
    .addOption(checkpointOption())
    .option('--split <name>', 'held-out split to evaluate on', 'test')
    .option('--n <count>', 'images per side: held-out real (capped by the split) and generated', '500')
    .option('--seed <seed>', 'seed of every random choice of the evaluation', '0')
    .addOption(backendOption("compute backend (default: the run config's)"))
    .addOption(allowSoftwareGpuOption())
    .option(
      '--feature-steps <n>',
      `training steps of the feature net and TSTR classifiers (part of the feature-net key)`,
      String(DEFAULT_RECIPE.steps),
    )
    .option('--pr-k <k>', 'neighbours of the k-NN manifolds of precision and recall', String(DEFAULT_PR_K))
    .option(
      '--utility-seeds <count>',
      'classifier seeds of TSTR, TRTR and real + synthetic (mean ± std, 95% intervals)',
      String(DEFAULT_UTILITY_SEEDS),
    )
    .option('--cache-dir <dir>', 'where trained feature nets are kept (default: <run dir>/../.feature-nets)')
    .option('--tasks <list>', 'also restoration tasks (src/restore): impute,denoise,score')
    .option('--normal <classes>', 'with --tasks score: the normal classes of the AUROC, e.g. 0')
    .option('--debug', 'print stack traces on errors')
    .action((flags: EvalFlags) =>
      runCommand(Boolean(flags.debug), async () => (await import('./eval-actions.ts')).evalCommand(flags, out)),
    );

  program
    .command('report')
    .description('write a self-contained HTML report of a run (and others side by side)')
    .requiredOption('--run <dir>', 'run directory')
    .option('--compare <dir>', 'another run to show side by side (repeatable)', collect, [])
    .option('--out <file>', 'output file (default: RUN_DIR/report.html)')
    .option('--debug', 'print stack traces on errors')
    .action((flags: ReportFlags) =>
      runCommand(Boolean(flags.debug), async () => (await import('./eval-actions.ts')).reportCommand(flags, out)),
    );
}
