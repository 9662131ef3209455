// Running `medvae` from a test, two ways. medvaeProcess: a real process of bin/medvae.js (what a
// test about exit codes, signals, stdout/stderr separation or anything else of the process needs),
// at a second or two of CPU for Node, TF.js and the backend each time. medvaeInProcess: the same
// commands registered as src/cli/medvae.ts registers them, parsed by commander in this process,
// with what they write to stdout and stderr captured and the exit code they set read back: for a
// test about what a command does, TF.js and the backend loaded once per test file.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerTrainCommand } from '../../src/cli/train-command.ts';
import { registerGenerateCommands } from '../../src/cli/generate-commands.ts';
import { registerDataCommands } from '../../src/cli/data-command.ts';
import { registerEvalCommands } from '../../src/cli/eval-command.ts';
import { registerRestoreCommands } from '../../src/cli/restore-commands.ts';
import { EXIT_USAGE } from '../../src/cli/errors.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'medvae.js');

export interface CliResult {
  /** The exit code (null for a process ended by a signal). */
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface ProcessOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Another of bin/'s commands, e.g. bin/medvae-dist.js. */
  bin?: string;
  /** Node's own flags, before the script: e.g. `--import` of a module preloaded into the process. */
  execArgv?: string[];
  timeoutMs?: number;
}

/** `medvae ARGS` in a process of its own, in the repository root; waits for it to exit. */
export function medvaeProcess(args: string[], options: ProcessOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [...(options.execArgv ?? []), options.bin ?? BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 180_000,
    env: { ...process.env, ...options.env },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Write = typeof process.stdout.write;

/** One in-process command at a time: they share this process's stdout, stderr and exit code. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * `medvae ARGS` run by commander in this process: its stdout and stderr as the process would have
 * written them, and its exit code: what the command set (runCommand: 1, or 2 for a UsageError), 2
 * for commander's own usage errors (as src/cli/errors.ts's usageExitCodes exits), 1 with the stack
 * for an exception that escaped the command (which a process would have died of). The paths are
 * taken relative to the repository root, as medvaeProcess runs there. Signal handlers a command
 * installs (train's Ctrl-C) are removed again.
 */
export function medvaeInProcess(args: string[]): Promise<CliResult> {
  const result = queue.then(() => runInProcess(args));
  queue = result.catch(() => undefined);
  return result;
}

async function runInProcess(args: string[]): Promise<CliResult> {
  if (process.cwd() !== ROOT) throw new Error(`medvaeInProcess runs in ${ROOT}, not ${process.cwd()}`);
  const program = new Command('medvae').exitOverride();
  registerTrainCommand(program);
  registerGenerateCommands(program);
  registerDataCommands(program);
  registerEvalCommands(program);
  registerRestoreCommands(program);

  const stdout: string[] = [];
  const stderr: string[] = [];
  const writes = { out: process.stdout.write, err: process.stderr.write };
  // Strings only on stdout: the test runner's own report to its parent passes through as the
  // buffers it writes. Everything on stderr is the command's.
  const capture = (into: string[], passBuffers: Write | undefined): Write =>
    function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (typeof chunk !== 'string' && passBuffers) return (passBuffers as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      done?.();
      return true;
    } as Write;
  const signals = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
  const exitCodeBefore = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = capture(stdout, writes.out);
  process.stderr.write = capture(stderr, undefined);
  let status: number;
  try {
    await program.parseAsync(args, { from: 'user' });
    status = Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) status = e.exitCode === 0 ? 0 : EXIT_USAGE;
    else {
      stderr.push(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      status = 1;
    }
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    process.exitCode = exitCodeBefore;
    for (const name of ['SIGINT', 'SIGTERM'] as const) {
      for (const listener of process.listeners(name)) if (!signals[name].includes(listener)) process.removeListener(name, listener);
    }
  }
  return { status, stdout: stdout.join(''), stderr: stderr.join('') };
}
