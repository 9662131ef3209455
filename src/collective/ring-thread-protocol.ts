// Messages between a worker's main thread and the thread that runs its ring (ring-thread.ts and
// workers/ring-thread.ts). Buffers travel as views over SharedArrayBuffers: both threads see the
// same floats, nothing is copied by the message.
import { DistConfigError, PeerError, ProtocolError } from './errors.ts';
import type { CollectiveStats } from './collective.ts';
import type { PeerAddress, RingOptions } from './ring-options.ts';

/** RingOptions without the log callback, which cannot cross threads (log lines come back as messages). */
export type ThreadRingOptions = Omit<RingOptions, 'log'>;

export type RingOpRequest =
  | { kind: 'allReduceMean'; id: number; buffers: Float32Array[] }
  | { kind: 'broadcast'; id: number; buffers: Float32Array[]; root: number }
  | { kind: 'barrier'; id: number };

export type ToRingThread = { kind: 'connect'; peers: PeerAddress[] } | RingOpRequest | { kind: 'close' };

/** CollectiveStats with the start time as milliseconds since the epoch: each thread has its own performance clock. */
export type ThreadStats = Omit<CollectiveStats, 'lastAllReduceStartedAt'> & { lastAllReduceStartedAtEpochMs: number };

export interface ErrorData {
  name: string;
  message: string;
  /** PeerError's peer. */
  rank?: number;
}

export type FromRingThread =
  | { kind: 'listening'; port: number; socketPath: string | null }
  | { kind: 'connected' }
  | { kind: 'done'; id: number; stats: ThreadStats }
  | { kind: 'failed'; id: number | null; error: ErrorData }
  | { kind: 'log'; line: string };

export function errorData(error: unknown): ErrorData {
  if (error instanceof PeerError) return { name: error.name, message: error.message, rank: error.rank };
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}

/** The error again, as the class the ring threw where the distributed layer has one. */
export function errorFrom(data: ErrorData): Error {
  if (data.name === 'PeerError' && data.rank !== undefined) return new PeerError(data.rank, data.message);
  if (data.name === 'ProtocolError') return new ProtocolError(data.message);
  if (data.name === 'DistConfigError') return new DistConfigError(data.message);
  const error = new Error(data.message);
  error.name = data.name;
  return error;
}
