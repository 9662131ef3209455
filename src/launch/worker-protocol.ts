// The control plane's vocabulary: what the agent asks of a worker process over the IPC
// channel (comlink RPC). Gradient bytes never travel here; they go worker to worker (ring.ts).
import type { ExperimentConfig } from '../config/schema.ts';
import type { MetricSnapshot } from '../metrics/registry.ts';
import type { LogFormat } from '../run/progress.ts';
import type { PeerAddress } from '../collective/ring.ts';

/** Who a worker is and what it trains: everything it needs, sent once at start. */
export interface WorkerPlan {
  rank: number;
  worldSize: number;
  /** For metrics and messages: "gpu:1" or "cpu:0". */
  device: string;
  config: ExperimentConfig;
  runDir: string;
  /** Run directory or checkpoint to continue from (set on restarts). */
  resume?: string;
  logFormat: LogFormat;
  /** Address the data plane listens on (port 0: ephemeral, reported back by prepare()). */
  listenHost: string;
  /** All-reduce bucket and frame sizes of the data plane (every rank must use the same). */
  bucketBytes: number;
  chunkBytes: number;
  /** Buckets of gradients are all-reduced during the backward pass (false: after it). */
  overlap: boolean;
  /** Listening beyond loopback (several hosts): also offer a Unix socket to ranks on this host. */
  offerUnixSocket: boolean;
}

export interface WorkerHealth {
  rank: number;
  pid: number;
  /** 'setup' until the ring is formed and training starts. */
  phase: 'setup' | 'training' | 'done';
  /** Optimizer steps done (global count, including those before a resume). */
  step: number;
  rssBytes: number;
  tensors: number;
  tensorBytes: number;
}

export interface WorkerResult {
  step: number;
  stoppedBy: 'completed' | 'max_steps' | 'signal';
  checkpoint: string;
  peakRssBytes: number;
}

/** The object each worker exposes over comlink. */
export interface WorkerApi {
  /** Starts listening for ring neighbours; returns the data-plane port and Unix socket (null: none). */
  prepare(plan: WorkerPlan): Promise<{ port: number; socketPath: string | null }>;
  /** Forms the ring with every rank's address and trains to the end. */
  train(peers: PeerAddress[]): Promise<WorkerResult>;
  health(): WorkerHealth;
  metrics(): Promise<MetricSnapshot>;
  /** Finish the step in flight, checkpoint (rank 0) and return from train(). */
  stop(): void;
}
