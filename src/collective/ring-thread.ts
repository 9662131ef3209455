// The ring on a thread of its own. On the main thread the ring moves bytes only between the
// callbacks of whatever else runs there, so during a backward pass, whose kernels hold the thread
// for tens of milliseconds each, links sat idle. Here the thread owns the sockets (they cannot move
// between threads, so it also listens and dials) and the main thread holds a Collective that posts
// each operation to it; buffers are shared memory, so the floats are not copied by the message.
import { Worker } from 'node:worker_threads';
import { ownModule, RUNNING_FROM_SOURCE } from '../util/module-path.ts';
import type { Collective, CollectiveStats } from './collective.ts';
import { listenForRing, type RingListener } from './ring.ts';
import { logRingEvent, type PeerAddress, type RingOptions } from './ring-options.ts';
import { errorFrom, type FromRingThread, type RingOpRequest, type ThreadStats, type ToRingThread } from './ring-thread-protocol.ts';

// From source, a plain-JS entry that loads tsx in the thread first (see workers/ring-thread-entry.js).
const ENTRY = RUNNING_FROM_SOURCE
  ? new URL('../../workers/ring-thread-entry.js', import.meta.url)
  : ownModule('../../workers/ring-thread.ts', import.meta.url);

/** Waits at most this long for the thread to end after close() before terminating it. */
const EXIT_GRACE_MS = 5000;

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
  /** Copies results back into callers' buffers that were not shared memory. */
  copyBack: () => void;
}

/** Views over shared memory for the thread: callers' shared buffers as they are, others copied. */
function shared(buffers: readonly Float32Array[]): { views: Float32Array[]; copyBack: () => void } {
  const copies: [Float32Array, Float32Array][] = [];
  const views = buffers.map((b) => {
    if (b.buffer instanceof SharedArrayBuffer) return b;
    const copy = new Float32Array(new SharedArrayBuffer(b.byteLength));
    copy.set(b);
    copies.push([b, copy]);
    return copy;
  });
  return { views, copyBack: () => copies.forEach(([b, copy]) => b.set(copy)) };
}

class ThreadedCollective implements Collective {
  readonly progressesInBackground = true;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private statsNow: CollectiveStats = { bytesReduced: 0, lastAllReduceMs: 0, lastAllReduceWaitMs: 0, lastAllReduceStartedAt: 0, busyMs: 0 };
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private onListening: { resolve: (at: { port: number; socketPath: string | null }) => void; reject: (e: Error) => void } | null = null;
  private onConnected: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private readonly exited: Promise<void>;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly worker: Worker,
    log: (line: string) => void,
  ) {
    worker.on('message', (message: FromRingThread) => {
      if (message.kind === 'log') log(message.line);
      else if (message.kind === 'listening') this.onListening?.resolve(message);
      else if (message.kind === 'connected') this.onConnected?.resolve();
      else if (message.kind === 'done') this.settle(message.id, null, message.stats);
      else if (message.kind === 'failed') {
        const error = errorFrom(message.error);
        if (message.id === null) this.failAll(error);
        else this.settle(message.id, error);
      }
    });
    worker.on('error', (error) => this.failAll(error));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        this.failAll(new Error(`rank ${rank}: the ring thread exited (code ${code})`));
        resolve();
      }),
    );
  }

  listening(): Promise<{ port: number; socketPath: string | null }> {
    return new Promise((resolve, reject) => (this.onListening = { resolve, reject }));
  }

  connect(peers: PeerAddress[]): Promise<Collective> {
    return new Promise<Collective>((resolve, reject) => {
      this.onConnected = { resolve: () => resolve(this), reject };
      this.post({ kind: 'connect', peers });
    });
  }

  allReduceMean(buffers: Float32Array[]): Promise<void> {
    const { views, copyBack } = shared(buffers);
    return this.request((id) => ({ kind: 'allReduceMean', id, buffers: views }), copyBack);
  }

  broadcast(buffers: Float32Array[], root: number): Promise<void> {
    const { views, copyBack } = shared(buffers);
    return this.request((id) => ({ kind: 'broadcast', id, buffers: views, root }), copyBack);
  }

  barrier(): Promise<void> {
    return this.request(
      (id) => ({ kind: 'barrier', id }),
      () => undefined,
    );
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.post({ kind: 'close' });
      const timer = setTimeout(() => void this.worker.terminate(), EXIT_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.closing;
  }

  stats(): CollectiveStats {
    return this.statsNow;
  }

  private request(make: (id: number) => RingOpRequest, copyBack: () => void): Promise<void> {
    // Closed first: after close() the thread's exit is also recorded as a failure, which would misname the cause.
    if (this.closing) return Promise.reject(new Error(`rank ${this.rank}: collective is closed`));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, copyBack });
      this.post(make(id));
    });
  }

  private settle(id: number, error: Error | null, stats?: ThreadStats): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if (stats) {
      const { lastAllReduceStartedAtEpochMs, ...rest } = stats;
      // Set before the caller resumes, which reads them at once (see OverlappedReducer).
      this.statsNow = { ...rest, lastAllReduceStartedAt: lastAllReduceStartedAtEpochMs - performance.timeOrigin };
    }
    if (error) pending.reject(error);
    else {
      pending.copyBack();
      pending.resolve();
    }
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    this.onListening?.reject(error);
    this.onConnected?.reject(error);
    this.onListening = this.onConnected = null;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private post(message: ToRingThread): void {
    this.worker.postMessage(message);
  }
}

/**
 * listenForRing, with the ring on a thread of its own: the returned listener's collective runs every
 * operation there and reports progressesInBackground. A world of one needs no ring and no thread.
 */
export async function listenForRingOnThread(opts: RingOptions): Promise<RingListener> {
  if (opts.worldSize === 1) return listenForRing(opts);
  const { log = logRingEvent, ...threadOptions } = opts;
  const collective = new ThreadedCollective(opts.rank, opts.worldSize, new Worker(ENTRY, { workerData: threadOptions }), log);
  const { port, socketPath } = await collective.listening();
  return { port, socketPath, connect: (peers) => collective.connect(peers), close: () => collective.close() };
}
