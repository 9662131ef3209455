// How the command line fails: one clear line for the user, the stack only with --debug.

export function describeError(e: unknown, debug: boolean): string {
  if (!(e instanceof Error)) return `error: ${String(e)}`;
  if (debug) return e.stack ?? `${e.name}: ${e.message}`;
  return `error: ${e.message.split('\n')[0]}`;
}

/** Runs an async command body; prints and exits non-zero on failure. */
export async function runCommand(debug: boolean, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.stderr.write(`${describeError(e, debug)}\n`);
    process.exitCode = 1;
  }
}
