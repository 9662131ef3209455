// Where a resumed run continues: the newest checkpoint that proves intact (damaged newer ones are
// named and moved aside), in the run directory it belongs to, with the run's own record cut back
// to that step so no step is logged twice.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CheckpointDamagedError, CheckpointError, verifyCheckpoint } from '../run/checkpoint-manifest.ts';
import { listCheckpoints, newestIntactCheckpoint, skipKind } from '../run/run-checkpoint.ts';
import { removeStaleTemps, writeFileAtomic } from '../util/atomic.ts';

/** The run directory a --resume path belongs to: the run itself, or the run of a checkpoint inside it. */
export function runDirOfResume(resume: string): string | undefined {
  if (existsSync(join(resume, 'config.yaml'))) return resume;
  const run = dirname(dirname(resume));
  if (basename(dirname(resume)) === 'checkpoints' && existsSync(join(run, 'config.yaml'))) return run;
  return undefined;
}

function moveAside(dir: string, prefix: 'damaged' | 'superseded'): string {
  let target = join(dirname(dir), `${prefix}-${basename(dir)}`);
  for (let k = 2; existsSync(target); k++) target = join(dirname(dir), `${prefix}-${basename(dir)}-${k}`);
  renameSync(dir, target);
  return target;
}

/**
 * Resuming one checkpoint by hand abandons the run's later ones: they are moved aside (superseded-step-N)
 * so that neither pruning nor a later --resume mixes the two histories.
 */
function supersedeLater(checkpoint: string, log: (line: string) => void): void {
  if (basename(dirname(checkpoint)) !== 'checkpoints') return;
  const later = listCheckpoints(dirname(checkpoint)).filter((d) => basename(d) > basename(checkpoint));
  if (later.length === 0) return;
  const moved = later.map((d) => basename(moveAside(d, 'superseded')));
  log(`resuming ${basename(checkpoint)} by hand: the run's later checkpoints are set aside as ${moved.join(', ')}`);
}

/**
 * The checkpoint to continue from. A run directory gives its newest intact checkpoint; each damaged
 * newer one is reported in one line and, when `owner` (the process that writes checkpoints), moved
 * aside to damaged-step-N so nothing picks it up again.
 */
export function resolveResumeCheckpoint(resume: string, log: (line: string) => void, owner: boolean): string {
  const root = join(resume, 'checkpoints');
  const candidates = listCheckpoints(root).reverse();
  if (candidates.length === 0) {
    if (!existsSync(join(resume, 'state.json'))) {
      throw new CheckpointError(
        `--resume ${resume}: neither a checkpoint (no state.json) nor a run directory with checkpoints; give the directory \`medvae train\` printed as 'run directory:', or a checkpoint folder inside it (checkpoints/step-N)`,
      );
    }
    try {
      verifyCheckpoint(resume);
    } catch (e) {
      if (!(e instanceof CheckpointDamagedError)) throw e;
      throw new CheckpointError(
        `--resume ${resume}: this checkpoint is damaged (${e.message}); resume from its run directory to use the newest intact one`,
        { cause: e },
      );
    }
    if (owner) supersedeLater(resume, log);
    return resume;
  }
  let firstProblem = '';
  // The same choice every command that reads a run makes (run-checkpoint.ts); resuming also moves the damaged aside.
  const intact = newestIntactCheckpoint(candidates, ({ dir, error }, older) => {
    firstProblem ||= error.message;
    const moved = owner ? `; moved aside to ${basename(moveAside(dir, 'damaged'))}` : '';
    log(
      `warning: checkpoint ${dir} is ${skipKind(error)} (${error.message})${moved}; ${older ? `resuming from ${basename(older)}` : 'no older checkpoint'}`,
    );
  });
  if (intact) return intact;
  throw new CheckpointError(
    `--resume ${resume}: no intact checkpoint under ${root} (${firstProblem}); start the run again without --resume`,
  );
}

/** Drops metrics.jsonl records after `step` (and lines cut short by a crash), so a resumed run logs each step once. */
export function rewindMetrics(file: string, step: number): number {
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const kept = lines.filter((line) => {
    try {
      const rec = JSON.parse(line) as { step?: unknown };
      return typeof rec.step !== 'number' || rec.step <= step;
    } catch {
      return false;
    }
  });
  if (kept.length !== lines.length) writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
  return lines.length - kept.length;
}

/** Folders of a run that atomic writes go into. */
const WRITTEN_DIRS = ['.', 'checkpoints', 'samples', 'reconstructions', 'plots'];

/** Removes the leftovers of writes a killed process never finished; returns how many. */
export function clearInterruptedWrites(runDir: string): number {
  return WRITTEN_DIRS.reduce((n, d) => n + removeStaleTemps(join(runDir, d)).length, 0);
}
