// The control plane of `medvae-dist`: who runs (one forked process per device), which rank and
// shard each has, when to stop, and what to do when one dies or hangs (stop all, restart all from
// the last checkpoint, as torchrun's elastic agent does). It never touches gradient bytes: the
// workers all-reduce among themselves over the ring (Unix sockets on one host, TCP between hosts).
// Across hosts there is one agent per node; they meet at node 0's rendezvous (rendezvous-*.ts), which
// also carries each agent's failures to the others, so that every node stops and restarts together.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as Comlink from 'comlink';
import type { ExperimentConfig } from '../config/schema.ts';
import type { AgentMetrics } from '../metrics/aggregate.ts';
import type { LogFormat, Progress } from '../run/progress.ts';
import { latestCheckpoint } from '../run/run-checkpoint.ts';
import { DEFAULT_TIMEOUT_MS, type PeerAddress } from '../collective/ring.ts';
import { isLoopbackHost } from '../collective/handshake.ts';
import { childProcessEndpoint } from './ipc-endpoint.ts';
import { deviceEnv } from './device-env.ts';
import { CHILD_EXEC_ARGV, ownModule } from '../util/module-path.ts';
import { RendezvousSession } from './rendezvous-client.ts';
import type { JoinRequest } from './rendezvous-protocol.ts';
import { RendezvousServer } from './rendezvous-server.ts';
import type { NodeLayout } from './scheduler-env.ts';
import type { WorkerApi, WorkerResult } from './worker-protocol.ts';

const WORKER_ENTRY = ownModule('../../workers/dist-worker.ts', import.meta.url);
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
  /** One entry per worker: 'gpu:<id>' or 'cpu:<n>' (device-env.ts says what each sees). */
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
  /** Gradient buckets go out during the backward pass (false: after it). */
  overlap: boolean;
  /** Several hosts: this node's place, and what it tells node 0's rendezvous. */
  nodes?: MultiNodeOptions;
}

export interface MultiNodeOptions {
  layout: NodeLayout;
  token: string;
  rdzvTimeoutMs: number;
  /** Address this node's workers are reached at; default: the one node 0 sees its agent connect from. */
  localAddr?: string;
  hostname: string;
  /** The resolved config and launcher settings, flattened: every node must join with the same. */
  settings: JoinRequest['settings'];
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
  const child = fork(WORKER_ENTRY, [], {
    execArgv: [...CHILD_EXEC_ARGV],
    env: { ...process.env, ...deviceEnv(device), MEDVAE_RANK: String(rank) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
  });
  return {
    rank,
    device,
    child,
    api: Comlink.wrap<WorkerApi>(childProcessEndpoint(child)),
    exited,
    lastStep: -1,
    lastProgressAt: Date.now(),
    lastAnswerAt: Date.now(),
    healthPending: false,
  };
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
      void w.exited.then((how) =>
        fail(`worker rank ${w.rank} (${w.device}, pid ${w.child.pid}) ${how} at step ~${Math.max(0, w.lastStep)}`),
      );
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
        fail(
          `worker rank ${w.rank} (${w.device}, pid ${w.child.pid}) made no progress for ${Math.round(since / 1000)} s at step ${step} (${step > 0 ? 'step' : 'start-up'} timeout ${limit / 1000} s): hung`,
        );
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
          .catch(() => {
            /* an exit is reported by `exited`; a slow answer by the timeout */
          })
          .finally(() => {
            w.healthPending = false;
          });
      }
    }, HEALTH_INTERVAL_MS);
  });
  void done
    .finally(() => {
      settled = true;
      clearInterval(timer);
    })
    .catch(() => {});
  return {
    failure,
    stop: () => {
      settled = true;
      clearInterval(timer);
    },
  };
}

async function killAll(workers: Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
}

/**
 * How long another node's agent may stay silent on the control channel: half the step timeout, so that a
 * partition is named (the silent node) before the step timeout blames a worker stalled by it.
 */
export function liveTimeoutMs(stepTimeoutMs: number): number {
  return Math.max(1000, Math.min(DEFAULT_TIMEOUT_MS, stepTimeoutMs / 2));
}

/** Every rank's address as this node's workers dial it: Unix socket paths only for ranks on this host. */
function peersForThisNode(all: { node: number; host: string; port: number; socketPath?: string }[], node: number): PeerAddress[] {
  return all.map((p) =>
    p.node === node && p.socketPath ? { host: p.host, port: p.port, socketPath: p.socketPath } : { host: p.host, port: p.port },
  );
}

/** One attempt: spawn, gather ports (across nodes: through the rendezvous), form the ring, train; all workers or none. */
async function attempt(opts: LaunchOptions, ownResume: string | undefined, session?: RendezvousSession): Promise<WorkerResult[]> {
  // Across nodes, node 0 decides where the round starts: an agent that a scheduler restarted knows nothing of the run.
  const resume = session ? (session.assignment.resume ?? undefined) : ownResume;
  const worldSize = session?.assignment.worldSize ?? opts.devices.length;
  const rankOffset = session?.assignment.rankOffset ?? 0;
  const workers = opts.devices.map((device, i) => spawnWorker(rankOffset + i, device));
  for (const w of workers) opts.metrics.workerUp(w.rank, w.device, true);
  const onAbort = (): void => {
    for (const w of workers) void w.api.stop().catch(() => {});
  };
  opts.signal.addEventListener('abort', onAbort);
  let watch: ReturnType<typeof watchWorkers> | undefined;
  try {
    const run = (async () => {
      const ports = await Promise.all(
        workers.map((w) =>
          w.api.prepare({
            rank: w.rank,
            worldSize,
            device: w.device,
            config: opts.config,
            runDir: opts.runDir,
            resume,
            logFormat: opts.logFormat,
            listenHost: opts.listenHost,
            bucketBytes: opts.bucketBytes,
            chunkBytes: opts.chunkBytes,
            overlap: opts.overlap,
            offerUnixSocket: session !== undefined,
          }),
        ),
      );
      const peers = session
        ? peersForThisNode(
            await session.exchangePorts(ports.map(({ port, socketPath }) => ({ port, socketPath }))),
            opts.nodes!.layout.nodeRank,
          )
        : ports.map(({ port }) => ({ host: opts.listenHost, port }));
      return Promise.all(workers.map((w) => w.api.train(peers)));
    })();
    watch = watchWorkers(workers, opts, run);
    // Another node's failure (or the loss of node 0) stops this node's workers too.
    const stopped = session?.stopped.then((reason) => Promise.reject(new WorkerFailure(reason)));
    const results = await Promise.race([run, watch.failure, ...(stopped ? [stopped] : [])]);
    watch.stop();
    session?.done();
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
    const failure =
      e instanceof WorkerFailure
        ? e
        : died
          ? new WorkerFailure(
              `worker rank ${died.rank} (${died.device}, pid ${died.child.pid}) ${await died.exited} at step ~${Math.max(0, died.lastStep)}`,
            )
          : // A lost peer is a failure to restart from; a worker's own error (bad config, diverged loss) is not.
            e instanceof Error && e.name === 'PeerError'
            ? new WorkerFailure(e.message)
            : e;
    // The other nodes stop too; they are told why.
    session?.fail(failure instanceof Error ? failure.message : String(failure));
    throw failure;
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    for (const w of workers) opts.metrics.workerUp(w.rank, w.device, false);
  }
}

/** Joins node 0's rendezvous for the next round (node 0 also holds it). */
function joinRound(opts: LaunchOptions, nodes: MultiNodeOptions): Promise<RendezvousSession> {
  const { layout } = nodes;
  return RendezvousSession.join({
    masterAddr: layout.masterAddr,
    masterPort: layout.masterPort,
    token: nodes.token,
    runDir: opts.runDir,
    rdzvTimeoutMs: nodes.rdzvTimeoutMs,
    liveTimeoutMs: liveTimeoutMs(opts.stepTimeoutMs),
    log: (line) => opts.progress.info(line),
    signal: opts.signal,
    request: {
      nodeRank: layout.nodeRank,
      nnodes: layout.nnodes,
      localWorldSize: opts.devices.length,
      localAddr: nodes.localAddr,
      hostname: nodes.hostname,
      settings: nodes.settings,
    },
  });
}

export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  const nodes = opts.nodes;
  const state = { resume: opts.resume };
  const server =
    nodes?.layout.nodeRank === 0
      ? await RendezvousServer.start({
          // Beyond loopback the master address may be a name (a Service's) that this host cannot bind.
          bindHost: isLoopbackHost(nodes.layout.masterAddr) ? nodes.layout.masterAddr : '0.0.0.0',
          masterAddr: nodes.layout.masterAddr,
          port: nodes.layout.masterPort,
          token: nodes.token,
          nnodes: nodes.layout.nnodes,
          runDir: opts.runDir,
          reference: { settings: nodes.settings },
          rdzvTimeoutMs: nodes.rdzvTimeoutMs,
          liveTimeoutMs: liveTimeoutMs(opts.stepTimeoutMs),
          log: (line) => opts.progress.info(`rendezvous: ${line}`),
          resume: () => state.resume ?? null,
        })
      : undefined;
  try {
    return await launchRounds(opts, state);
  } finally {
    await server?.close();
  }
}

async function launchRounds(opts: LaunchOptions, state: { resume?: string }): Promise<LaunchResult> {
  for (let restarts = 0; ; restarts++) {
    try {
      const session = opts.nodes ? await joinRound(opts, opts.nodes) : undefined;
      return { results: await attempt(opts, state.resume, session), restarts };
    } catch (e) {
      if (!(e instanceof WorkerFailure)) throw e;
      const last = latestCheckpoint(join(opts.runDir, 'checkpoints'));
      if (restarts >= opts.maxRestarts) {
        const hint =
          opts.maxRestarts === 0 ? '; pass --max-restarts N to restart the workers automatically' : ` after ${restarts} restart(s)`;
        throw new WorkerFailure(
          `${e.message}. All workers stopped. Last checkpoint: ${last ?? '(none)'} (intact); continue with: ${opts.resumeCommand}${hint}`,
        );
      }
      opts.metrics.restart();
      // Restart from the newest checkpoint; before the first one exists, from where the run began.
      if (last && existsSync(join(last, 'state.json'))) state.resume = opts.runDir;
      opts.progress.info(
        `${e.message}; restarting all ${opts.devices.length} workers${opts.nodes ? ' of this node, after a new rendezvous,' : ''} from ${last ?? 'the start'} (restart ${restarts + 1} of ${opts.maxRestarts})`,
      );
    }
  }
}
