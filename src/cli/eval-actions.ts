// What `medvae eval` and `medvae report` do once their flags have parsed (eval-command.ts registers
// them). Loaded only when one of them runs: it brings TF.js.
import type { BackendChoice } from '../config/schema.ts';
import { formatEvalTable, writeEvalFile } from '../eval/eval-file.ts';
import { evalRun } from '../eval/run-eval.ts';
import { DEFAULT_RECIPE } from '../eval/defaults.ts';
import { writeReport } from '../report/write-report.ts';
import { integerFlag } from './errors.ts';
import { evalRestoration, formatRestorationTable } from '../restore/eval-hook.ts';
import { parseTasks } from '../restore/restore-eval.ts';
import { parseNormal } from '../restore/anomaly.ts';
import { runCheckpointOf } from './run-option.ts';
import type { CommandOutput, EvalFlags, ReportFlags } from './eval-command.ts';

/** `medvae eval FLAGS`: eval.json in the run directory, the table on `out`. */
export async function evalCommand(flags: EvalFlags, out: CommandOutput): Promise<void> {
  // The flags first: a mistake in one costs no checkpoint read and no backend.
  const n = integerFlag('--n', flags.n, 2);
  const seed = integerFlag('--seed', flags.seed, 0);
  const recipe = { ...DEFAULT_RECIPE, steps: integerFlag('--feature-steps', flags.featureSteps, 1) };
  const prK = integerFlag('--pr-k', flags.prK, 1);
  const utilitySeeds = integerFlag('--utility-seeds', flags.utilitySeeds, 2);
  const tasks = flags.tasks ? parseTasks(flags.tasks) : [];
  const normal = flags.normal === undefined ? undefined : parseNormal(flags.normal);
  // Chosen once: the evaluation and the restoration tasks use the same checkpoint, named once if the newest was damaged.
  const { runDir, dir: checkpoint } = runCheckpointOf(flags);
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const file = await evalRun(runDir, {
    checkpoint,
    split: flags.split,
    n,
    seed,
    backend: flags.backend as BackendChoice | undefined,
    allowSoftwareGpu: flags.allowSoftwareGpu,
    recipe,
    cacheDir: flags.cacheDir,
    prK,
    utilitySeeds,
    log,
  });
  const restoration =
    tasks.length > 0 ? await evalRestoration(runDir, { checkpoint, tasks, split: flags.split, n, seed, normal, log }) : undefined;
  const withTasks: typeof file & { restoration?: typeof restoration } = restoration ? { ...file, restoration } : file;
  const path = writeEvalFile(runDir, withTasks);
  out.write(`${formatEvalTable(file)}${restoration ? `\n${formatRestorationTable(restoration)}` : ''}\nwrote ${path}\n`);
}

/** `medvae report FLAGS`. */
export function reportCommand(flags: ReportFlags, out: CommandOutput): void {
  const path = writeReport(flags.run, { compare: flags.compare, out: flags.out });
  out.write(`wrote ${path}\n`);
}
