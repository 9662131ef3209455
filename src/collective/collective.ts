// The collective operations a data-parallel worker needs, independent of transport.
// Every rank must call the same operations in the same order with buffers of the same sizes.

export interface CollectiveStats {
  /** Bytes of gradient passed to allReduceMean since the start (per rank, not wire bytes). */
  bytesReduced: number;
  lastAllReduceMs: number;
  /**
   * Of lastAllReduceMs, the time from entering the all-reduce until its first frame arrived: the
   * lag of the rank that sends to this one (a straggler), not the cost of moving bytes.
   */
  lastAllReduceWaitMs: number;
  /** When the last all-reduce began moving data (performance.now() of this process): after the operations queued before it. */
  lastAllReduceStartedAt: number;
  /**
   * Milliseconds this process's thread has spent on the collective's own work since the start:
   * sending, receiving, summing. With overlap, that work runs between backward kernels.
   */
  busyMs: number;
}

export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * True when operations progress on a thread of their own: the caller need not give its event
   * loop a turn for them, and stats().busyMs is that thread's time, not the caller's.
   */
  readonly progressesInBackground: boolean;
  /** Replaces every element with its mean over ranks, in place; all ranks end bit-identical. */
  allReduceMean(buffers: Float32Array[]): Promise<void>;
  /** Copies root's buffers into every rank's buffers (same sizes on all ranks). */
  broadcast(buffers: Float32Array[], root: number): Promise<void>;
  /** Resolves once every rank has entered the barrier. */
  barrier(): Promise<void>;
  close(): Promise<void>;
  stats(): CollectiveStats;
}

/** World size 1: the mean over one rank is the buffers themselves. No sockets. */
export class LocalCollective implements Collective {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly progressesInBackground = false;
  private bytesReduced = 0;

  async allReduceMean(buffers: Float32Array[]): Promise<void> {
    for (const b of buffers) this.bytesReduced += b.byteLength;
  }

  async broadcast(_buffers: Float32Array[], root: number): Promise<void> {
    if (root !== 0) throw new RangeError(`broadcast root ${root} is not a rank of a world of size 1`);
  }

  async barrier(): Promise<void> {}

  async close(): Promise<void> {}

  stats() {
    return { bytesReduced: this.bytesReduced, lastAllReduceMs: 0, lastAllReduceWaitMs: 0, lastAllReduceStartedAt: 0, busyMs: 0 };
  }
}
