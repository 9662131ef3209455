// How the command line fails: one clear line for the user, the stack only with --debug; exit 1,
// or 2 for a usage mistake (a flag's value, a missing argument), as commander does for its own.
import type { Command } from 'commander';

/** A flag or argument the command cannot use; the message names it and what it takes. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A flag's integer value, at least `min`; anything else is a usage error naming the flag. */
export function integerFlag(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}, got '${value}'`);
  return n;
}

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** 128 + the signal number, what shells report for a command stopped by it: Ctrl-C (SIGINT) 130, SIGTERM (what Kubernetes and Slurm send) 143. */
export const EXIT_INTERRUPTED = { SIGINT: 130, SIGTERM: 143 } as const;

const ERRNO_WHAT: Record<string, string> = {
  ENOSPC: 'no space left on the device; free some space (or write elsewhere) and try again',
  EACCES: 'permission denied; check the owner and mode of the file or folder',
  EPERM: 'operation not permitted; check the owner and mode of the file or folder',
  EROFS: 'read-only filesystem; write somewhere else',
  ENOENT: 'no such file or folder; check the path',
  EISDIR: 'is a folder where a file was expected',
  ENOTDIR: 'a part of the path is a file where a folder was expected',
  EMFILE: 'too many open files; raise the limit (ulimit -n) and try again',
};

/** A system call's error as one line that names the path (Node's own message names only the call). */
function describeErrno(e: NodeJS.ErrnoException): string | undefined {
  const what = e.code ? ERRNO_WHAT[e.code] : undefined;
  if (!what) return undefined;
  return e.path ? `${e.path}: ${what}` : `${what} (${e.syscall ?? 'system call'} failed)`;
}

export function describeError(e: unknown, debug: boolean): string {
  if (!(e instanceof Error)) return `error: ${String(e)}`;
  if (debug) return e.stack ?? `${e.name}: ${e.message}`;
  const line = (e as NodeJS.ErrnoException).code ? describeErrno(e as NodeJS.ErrnoException) : undefined;
  return `error: ${line ?? e.message.split('\n')[0]}`;
}

/** Runs an async command body; prints one line and sets the exit code on failure. */
export async function runCommand(debug: boolean, body: () => Promise<void>, onFailure?: (e: unknown) => string | undefined): Promise<void> {
  try {
    await body();
  } catch (e) {
    const more = onFailure?.(e);
    process.stderr.write(`${describeError(e, debug)}${more ? `; ${more}` : ''}\n`);
    process.exitCode = e instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

/** Commander's own usage errors (unknown flag, missing argument, bad choice) exit 2, not 1. */
export function usageExitCodes(program: Command): Command {
  return program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  });
}
