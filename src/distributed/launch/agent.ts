// The control plane of `medvae-dist`: who runs (one forked process per device), which rank and
// shard each has, when to stop, and what to do when one dies or hangs (stop all, restart all from
// the last checkpoint, as torchrun's elastic agent does). It never touches gradient bytes: the
// workers all-reduce among themselves over the ring (Unix sockets on one host, TCP between hosts).
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as Comlink from 'comlink';
import type { ExperimentConfig } from '../../config/schema.ts';
import type { AgentMetrics } from '../../metrics/aggregate.ts';
import type { LogFormat, Progress } from '../../train/progress.ts';
import { latestCheckpoint } from '../../train/checkpoint.ts';
import { childProcessEndpoint } from './ipc-endpoint.ts';
import { CHILD_EXEC_ARGV, ownModule } from '../../util/module-path.ts';
import type { WorkerApi, WorkerResult } from './worker-protocol.ts';

const WORKER_ENTRY = ownModule('../../../workers/dist-worker.ts', import.meta.url);
const HEALTH_INTERVAL_MS = 1000;
/** Longest start-up (backend, data, model, ring) before the first step, whatever --step-timeout says. */
const STARTUP_TIMEOUT_MS = 300_000;

export class WorkerFailure extends Error {
  override name = 'WorkerFailure';
}

export interface LaunchOptions {
  config: ExperimentConfig;
  runDir: string;
  resume?: string;
  /** The command that continues this run (`npx medvae-dist ... --resume DIR`), for the failure message. */
  resumeCommand: string;
  /** One entry per worker: 'gpu:<id>' (CUDA_VISIBLE_DEVICES=<id>) or 'cpu:<n>'. */
  devices: string[];
  /** Restart every worker from the last checkpoint this many times after a failure. */
  maxRestarts: number;
  /** A worker whose step count does not move for this long is treated as dead. */
  stepTimeoutMs: number;
  logFormat: LogFormat;
  progress: Progress;
  metrics: AgentMetrics;
  /** Aborted (Ctrl-C): workers finish the step, rank 0 checkpoints, all return. */
  signal: AbortSignal;
  /** Data-plane listen address of every worker (loopback unless running across hosts). */
  listenHost: string;
  /** All-reduce bucket size and frame (pipelining chunk) size of the data plane. */
  bucketBytes: number;
  chunkBytes: number;
}

export interface LaunchResult {
  results: WorkerResult[];
  restarts: number;
}

interface Worker {
  rank: number;
  device: string;
  child: ChildProcess;
  api: Comlink.Remote<WorkerApi>;
  exited: Promise<string>;
  lastStep: number;
  lastProgressAt: number;
  /** When the worker last answered a health check (a stopped or blocked process does not). */
  lastAnswerAt: number;
  healthPending: boolean;
}

function spawnWorker(rank: number, device: string): Worker {
  const [kind, id] = device.split(':') as [string, string];
  const child = fork(WORKER_ENTRY, [], {
    execArgv: [...CHILD_EXEC_ARGV],
    // One GPU per process: TensorFlow.js cannot place ops on a chosen device, so each worker sees one.
    env: { ...process.env, CUDA_VISIBLE_DEVICES: kind === 'gpu' ? id : '', MEDVAE_RANK: String(rank) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
  });
  return { rank, device, child, api: Comlink.wrap<WorkerApi>(childProcessEndpoint(child)), exited, lastStep: -1, lastProgressAt: Date.now(), lastAnswerAt: Date.now(), healthPending: false };
}

/** Rejects when any worker exits before `done` settles, or stops making progress. */
function watchWorkers(workers: Worker[], opts: LaunchOptions, done: Promise<unknown>): { failure: Promise<never>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const failure = new Promise<never>((_, reject) => {
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      reject(new WorkerFailure(message));
    };
    for (const w of workers) {
      void w.exited.then((how) => fail(`worker rank ${w.rank} (${w.device}, pid ${w.child.pid}) ${how} at step ~${Math.max(0, w.lastStep)}`));
    }
    timer = setInterval(() => {
      const now = Date.now();
      // Before its first step a worker loads the backend, the data and the model: allowed longer.
      const limitOf = (w: Worker): number => (w.lastStep > 0 ? opts.stepTimeoutMs : Math.max(opts.stepTimeoutMs, STARTUP_TIMEOUT_MS));
      const stalled = workers.filter((w) => now - w.lastProgressAt > limitOf(w));
      if (stalled.length > 0) {
        // When one worker hangs, its peers stall too, waiting for it inside the all-reduce; but
        // they still answer health checks. Blame the one that stopped answering, if there is one.
        const silent = workers.reduce((a, b) => (a.lastAnswerAt <= b.lastAnswerAt ? a : b));
        const w = now - silent.lastAnswerAt > 3 * HEALTH_INTERVAL_MS ? silent : stalled[0]!;
        const limit = limitOf(stalled[0]!);
        const step = Math.max(0, ...workers.map((x) => x.lastStep));
        const since = Math.max(...stalled.map((x) => now - x.lastProgressAt));
        fail(`worker rank ${w.rank} (${w.device}, pid ${w.child.pid}) made no progress for ${Math.round(since / 1000)} s at step ${step} (${step > 0 ? 'step' : 'start-up'} timeout ${limit / 1000} s): hung`);
        return;
      }
      for (const w of workers) {
        if (w.healthPending) continue;
        w.healthPending = true;
        void Promise.all([w.api.health(), w.api.metrics()])
          .then(([health, snapshot]) => {
            w.lastAnswerAt = Date.now();
            if (health.step !== w.lastStep || health.phase !== 'training') {
              w.lastStep = health.step;
              w.lastProgressAt = Date.now();
            }
            opts.metrics.workerSnapshot(w.rank, snapshot);
          })
          .catch(() => { /* an exit is reported by `exited`; a slow answer by the timeout */ })
          .finally(() => { w.healthPending = false; });
      }
    }, HEALTH_INTERVAL_MS);
  });
  void done.finally(() => { settled = true; clearInterval(timer); }).catch(() => {});
  return { failure, stop: () => { settled = true; clearInterval(timer); } };
}

async function killAll(workers: Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
}

/** One attempt: spawn, rendezvous (ports), form the ring, train; all workers or none. */
async function attempt(opts: LaunchOptions, resume: string | undefined): Promise<WorkerResult[]> {
  const worldSize = opts.devices.length;
  const workers = opts.devices.map((device, rank) => spawnWorker(rank, device));
  for (const w of workers) opts.metrics.workerUp(w.rank, w.device, true);
  const onAbort = (): void => { for (const w of workers) void w.api.stop().catch(() => {}); };
  opts.signal.addEventListener('abort', onAbort);
  let watch: ReturnType<typeof watchWorkers> | undefined;
  try {
    const run = (async () => {
      const ports = await Promise.all(workers.map((w) => w.api.prepare({
        rank: w.rank, worldSize, device: w.device, config: opts.config, runDir: opts.runDir, resume,
        logFormat: opts.logFormat, listenHost: opts.listenHost, bucketBytes: opts.bucketBytes, chunkBytes: opts.chunkBytes,
      })));
      const peers = ports.map(({ port }) => ({ host: opts.listenHost, port }));
      return Promise.all(workers.map((w) => w.api.train(peers)));
    })();
    watch = watchWorkers(workers, opts, run);
    const results = await Promise.race([run, watch.failure]);
    watch.stop();
    // Finished workers leave when their IPC channel closes.
    for (const w of workers) w.child.disconnect();
    await Promise.all(workers.map((w) => w.exited));
    return results;
  } catch (e) {
    watch?.stop();
    // Let exits that are already under way arrive, so a death is told apart from a worker's own error.
    await new Promise((r) => setTimeout(r, 200));
    const died = workers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
    await killAll(workers);
    if (e instanceof WorkerFailure) throw e;
    if (died) throw new WorkerFailure(`worker rank ${died.rank} (${died.device}, pid ${died.child.pid}) ${await died.exited} at step ~${Math.max(0, died.lastStep)}`);
    // A lost peer is a failure to restart from; a worker's own error (bad config, diverged loss) is not.
    if (e instanceof Error && e.name === 'PeerError') throw new WorkerFailure(e.message);
    throw e;
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    for (const w of workers) opts.metrics.workerUp(w.rank, w.device, false);
  }
}

export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  let resume = opts.resume;
  for (let restarts = 0; ; restarts++) {
    try {
      return { results: await attempt(opts, resume), restarts };
    } catch (e) {
      if (!(e instanceof WorkerFailure)) throw e;
      const last = latestCheckpoint(join(opts.runDir, 'checkpoints'));
      if (restarts >= opts.maxRestarts) {
        const hint = opts.maxRestarts === 0 ? '; pass --max-restarts N to restart the workers automatically' : ` after ${restarts} restart(s)`;
        throw new WorkerFailure(`${e.message}. All workers stopped. Last checkpoint: ${last ?? '(none)'} (intact); continue with: ${opts.resumeCommand}${hint}`);
      }
      opts.metrics.restart();
      // Restart from the newest checkpoint; before the first one exists, from where the run began.
      if (last && existsSync(join(last, 'state.json'))) resume = opts.runDir;
      opts.progress.info(`${e.message}; restarting all ${opts.devices.length} workers from ${last ?? 'the start'} (restart ${restarts + 1} of ${opts.maxRestarts})`);
    }
  }
}
