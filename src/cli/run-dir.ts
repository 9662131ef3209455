// A run directory belongs to a run that started: when a command created it and training failed
// before its first step (a bad image under --strict, a backend that will not load, ...), it goes
// again, so a failed attempt leaves no stub behind.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readMetricsLog } from '../run/metrics-log.ts';
import { DiskFullError } from '../util/atomic.ts';
import { latestCheckpoint } from '../run/run-checkpoint.ts';

export class RunDirGuard {
  private readonly existed: boolean;

  constructor(readonly runDir: string) {
    this.existed = existsSync(runDir);
  }

  /** After a failure: removes the directory if this command made it and no step was recorded in it. */
  discardIfUnstarted(): boolean {
    if (this.existed || !existsSync(this.runDir)) return false;
    if (readMetricsLog(join(this.runDir, 'metrics.jsonl')).some((r) => r.kind === 'step')) return false;
    rmSync(this.runDir, { recursive: true, force: true });
    return true;
  }
}

/** A path as one shell word, so a printed command can be pasted back. */
export function shellWord(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What to add to a failed run's error line: nothing when no run was kept, the intact checkpoint after a full disk. */
export function afterFailedRun(guard: RunDirGuard | undefined, e: unknown): string | undefined {
  if (!guard || guard.discardIfUnstarted()) return undefined;
  if (!(e instanceof DiskFullError)) return undefined;
  const last = latestCheckpoint(join(guard.runDir, 'checkpoints'));
  return last ? `the last checkpoint ${last} is intact` : 'no checkpoint was written yet';
}
