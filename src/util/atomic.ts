// Writes that never leave a user's file half-written: write beside the target, fsync, rename.
import { mkdirSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync, existsSync, readdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** A write failed because its filesystem is full; what was there before is untouched. */
export class DiskFullError extends Error {
  override name = 'DiskFullError';
  readonly target: string;
  constructor(target: string, options?: ErrorOptions) {
    super(
      `no space left on the device writing ${target}: free some space there (or write the run elsewhere with --out) and resume`,
      options,
    );
    this.target = target;
  }
}

function isDiskFull(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'ENOSPC';
}

function tempName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`);
}

/** What tempName makes (and writeDirAtomic's `.old` of a replaced directory): group 1 is the target's name. */
const TEMP_NAME = /^\.(.+)\.\d+\.\d+\.tmp(\.old)?$/;

export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw isDiskFull(e) ? new DiskFullError(target, { cause: e }) : e;
  }
}

/**
 * Fills a fresh temporary directory with `fill`, then moves it to `target`, replacing any
 * directory already there only once the new one is complete.
 */
export async function writeDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const tmp = tempName(target);
  try {
    mkdirSync(dirname(target), { recursive: true });
    mkdirSync(tmp, { recursive: true });
    await fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw isDiskFull(e) ? new DiskFullError(target, { cause: e }) : e;
  }
  if (existsSync(target)) {
    const old = `${tmp}.old`;
    renameSync(target, old);
    renameSync(tmp, target);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, target);
  }
}

/**
 * Clears what interrupted atomic writes left in `dir` (a process killed mid-write): temporary files
 * and directories are removed; a replaced directory whose replacement never landed is put back.
 * Returns the names removed or restored. Call only while no other process writes into `dir`.
 */
export function removeStaleTemps(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const cleared: string[] = [];
  for (const name of readdirSync(dir)) {
    const match = TEMP_NAME.exec(name);
    if (!match) continue;
    const target = join(dir, match[1]!);
    if (match[2] && !existsSync(target)) renameSync(join(dir, name), target);
    else rmSync(join(dir, name), { recursive: true, force: true });
    cleared.push(name);
  }
  return cleared;
}
