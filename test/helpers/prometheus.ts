// Test helpers around a real Prometheus server and promtool (Debian's `prometheus` package):
// start one scraping given targets four times a second, wait for scrapes, run PromQL through its HTTP
// API, always stop it. Reused by the scrape tests of `medvae train` and `medvae-dist`.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { stringify } from 'yaml';

/** Path of an executable on PATH (or /usr/bin, where Debian puts prometheus), else undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin'];
  return dirs.map((dir) => join(dir, name)).find((path) => path !== name && existsSync(path));
}

export const prometheusBinary = findExecutable('prometheus');
export const promtoolBinary = findExecutable('promtool');

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('freePort: no address');
  return address.port;
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, feeding `stdin` when given. */
export function runCommand(command: string, args: readonly string[], stdin?: string, timeoutMs = 30000): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

/** `promtool <args>`, e.g. runPromtool(['check', 'metrics'], text). */
export function runPromtool(args: readonly string[], stdin?: string): Promise<ProcessResult> {
  if (promtoolBinary === undefined) throw new Error('promtool is not installed (Debian package prometheus)');
  return runCommand(promtoolBinary, args, stdin);
}

/** One instant-vector element of a PromQL result. */
export interface PromSample {
  metric: Record<string, string>;
  /** The sample value as a number (Prometheus sends it as a string; "NaN" becomes NaN). */
  value: number;
}

export interface ScrapeJob {
  job: string;
  /** host:port of each target, e.g. `127.0.0.1:9464`. */
  targets: string[];
}

export interface RunningPrometheus {
  /** Base URL of its HTTP API, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  /** Instant query at the current time; throws when Prometheus answers with an error. */
  query(expr: string): Promise<PromSample[]>;
  /** Polls `expr` until `accept` returns true for its result (default: any result); returns it. */
  waitFor(expr: string, accept?: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** Waits until every target of `job` has been scraped successfully at least `count` times. */
  waitForScrapes(job: string, count: number, timeoutMs?: number): Promise<void>;
  /** Stops Prometheus (SIGTERM, then SIGKILL) and deletes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts Prometheus scraping `jobs` every `scrapeIntervalMs` (default 250: a test waiting for
 * scrapes is a training computing meanwhile, so seconds of waiting cost CPU) with its storage in a
 * fresh temp dir, and resolves once it answers /-/ready. Call stop() in a finally/after hook.
 */
export async function startPrometheus(options: {
  jobs: ScrapeJob[];
  scrapeIntervalMs?: number;
  startTimeoutMs?: number;
}): Promise<RunningPrometheus> {
  if (prometheusBinary === undefined) throw new Error('prometheus is not installed (Debian package prometheus)');
  const interval = `${options.scrapeIntervalMs ?? 250}ms`;
  const dir = await mkdtemp(join(tmpdir(), 'medvae-prometheus-'));
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(
    configPath,
    stringify({
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      scrape_configs: options.jobs.map(({ job, targets }) => ({ job_name: job, static_configs: [{ targets }] })),
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    prometheusBinary,
    [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)));

  // Should the test process exit without calling stop(), Prometheus must not outlive it.
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited(child);
    clearTimeout(killer);
    await rm(dir, { recursive: true, force: true });
  };

  const query = async (expr: string): Promise<PromSample[]> => {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== 'success' || body.data === undefined) throw new Error(`prometheus query ${expr}: ${body.error ?? response.status}`);
    if (body.data.resultType !== 'vector') throw new Error(`prometheus query ${expr}: expected a vector, got ${body.data.resultType}`);
    return body.data.result.map(({ metric, value }) => ({ metric, value: Number(value[1]) }));
  };

  const waitFor = async (
    expr: string,
    accept = (samples: PromSample[]) => samples.length > 0,
    timeoutMs = 20000,
  ): Promise<PromSample[]> => {
    const deadline = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    while (Date.now() < deadline) {
      last = await query(expr);
      if (accept(last)) return last;
      await sleep(200);
    }
    throw new Error(`prometheus: ${expr} not satisfied within ${timeoutMs} ms, last result ${JSON.stringify(last)}; log: ${log}`);
  };

  const waitForScrapes = async (job: string, count: number, timeoutMs = 20000): Promise<void> => {
    const targets = options.jobs.find((candidate) => candidate.job === job)?.targets.length;
    if (targets === undefined) throw new Error(`prometheus: no job ${job}`);
    // Each scrape writes one `up` sample per target; successful ones are 1.
    await waitFor(
      `sum_over_time(up{job="${job}"}[10m])`,
      (samples) => samples.length === targets && samples.every((s) => s.value >= count),
      timeoutMs,
    );
  };

  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 30000);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${log}`);
      const ready = await fetch(`${url}/-/ready`).then(
        (response) => response.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`prometheus not ready after ${options.startTimeoutMs ?? 30000} ms: ${log}`);
      await sleep(100);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, query, waitFor, waitForScrapes, stop };
}
