// Running medvae-dist as a real process in tests: its output gathered, a line awaited, its workers found.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Worker processes of an agent, by rank (read from their environment). */
export function workersOf(parent: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const rank = /MEDVAE_RANK=(\d+)/.exec(readFileSync(`/proc/${entry}/environ`, 'latin1'))?.[1];
      if (rank !== undefined) out.set(Number(rank), Number(entry));
    } catch {
      /* the process ended while we looked */
    }
  }
  return out;
}

export interface RunningProcess {
  child: ChildProcess;
  output: () => string;
  waitFor(re: RegExp): Promise<void>;
  exit: Promise<number | null>;
}

/** Starts argv with its output gathered, to wait for a line and for the exit. */
export function startProcess(argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): RunningProcess {
  const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const onData = (d: Buffer): void => {
    text += d.toString();
    for (const w of waiters) if (w.re.test(text)) w.resolve();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return {
    child,
    output: () => text,
    waitFor: (re) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(text)) return resolve();
        waiters.push({ re, resolve });
        void exit.then(() => reject(new Error(`exited before ${re}: ${text}`)));
      }),
    exit,
  };
}
