// `medvae eval` and `medvae report`.
import type { Command } from 'commander';
import type { BackendChoice } from '../config/schema.ts';
import { formatEvalTable, writeEvalFile } from '../eval/eval-file.ts';
import { evalRun } from '../eval/run-eval.ts';
import { DEFAULT_RECIPE } from '../eval/feature-net.ts';
import { DEFAULT_PR_K } from '../eval/precision-recall.ts';
import { DEFAULT_UTILITY_SEEDS } from '../eval/utility.ts';
import { writeReport } from '../report/write-report.ts';
import { integerFlag, runCommand } from './errors.ts';
import { allowSoftwareGpuOption, backendOption, type BackendFlags } from './backend-flags.ts';
import { evalRestoration, formatRestorationTable } from '../restore/eval-hook.ts';
import { parseTasks } from '../restore/restore-eval.ts';
import { parseNormal } from '../restore/anomaly.ts';
import { checkpointOption, RUN_HELP, runCheckpointOf } from './run-option.ts';

interface EvalFlags extends BackendFlags {
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

interface ReportFlags {
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
    .action(async (flags: EvalFlags) => {
      await runCommand(Boolean(flags.debug), async () => {
        // Chosen once: the evaluation and the restoration tasks use the same checkpoint, named once if the newest was damaged.
        const { runDir, dir: checkpoint } = runCheckpointOf(flags);
        const file = await evalRun(runDir, {
          checkpoint,
          split: flags.split,
          n: integerFlag('--n', flags.n, 2),
          seed: integerFlag('--seed', flags.seed, 0),
          backend: flags.backend as BackendChoice | undefined,
          allowSoftwareGpu: flags.allowSoftwareGpu,
          recipe: { ...DEFAULT_RECIPE, steps: integerFlag('--feature-steps', flags.featureSteps, 1) },
          cacheDir: flags.cacheDir,
          prK: integerFlag('--pr-k', flags.prK, 1),
          utilitySeeds: integerFlag('--utility-seeds', flags.utilitySeeds, 2),
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const tasks = flags.tasks ? parseTasks(flags.tasks) : [];
        const restoration =
          tasks.length > 0
            ? await evalRestoration(runDir, {
                checkpoint,
                tasks,
                split: flags.split,
                n: integerFlag('--n', flags.n, 2),
                seed: integerFlag('--seed', flags.seed, 0),
                normal: flags.normal === undefined ? undefined : parseNormal(flags.normal),
                log: (line) => process.stderr.write(`${line}\n`),
              })
            : undefined;
        const withTasks: typeof file & { restoration?: typeof restoration } = restoration ? { ...file, restoration } : file;
        const path = writeEvalFile(runDir, withTasks);
        out.write(`${formatEvalTable(file)}${restoration ? `\n${formatRestorationTable(restoration)}` : ''}\nwrote ${path}\n`);
      });
    });

  program
    .command('report')
    .description('write a self-contained HTML report of a run (and others side by side)')
    .requiredOption('--run <dir>', 'run directory')
    .option('--compare <dir>', 'another run to show side by side (repeatable)', collect, [])
    .option('--out <file>', 'output file (default: RUN_DIR/report.html)')
    .option('--debug', 'print stack traces on errors')
    .action(async (flags: ReportFlags) => {
      await runCommand(Boolean(flags.debug), async () => {
        const path = writeReport(flags.run, { compare: flags.compare, out: flags.out });
        out.write(`wrote ${path}\n`);
      });
    });
}
