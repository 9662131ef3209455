// The one place where the training step meets the collective: gradients and the step's loss terms
// go out as one list of buffers and come back averaged over workers, BatchNorm's batch statistics
// come back summed. With one worker nothing is copied: the collective is the identity.
import { tf } from '../util/tf.ts';
import { readInto, startReadInto, tensorsFrom, totalSize } from '../backend/tensor-io.ts';
import type { Collective } from '../collective/collective.ts';
import type { PendingStatistics } from '../models/batch-norm.ts';
import { accumulateGradients, addWeighted, disposeGradients, type OnGradient, type StepGradients } from './step.ts';
import { runToEnd } from './objective-grads.ts';

/** What the training loop needs of a collective (src/collective implements it as a ring over sockets). */
export type StepCollective = Pick<Collective, 'rank' | 'worldSize' | 'progressesInBackground' | 'allReduceMean' | 'broadcast' | 'stats'>;

/** The tensors' values end to end in a fresh array (for the occasional broadcast and checksum). */
async function readFlat(tensors: readonly tf.Tensor[]): Promise<Float32Array> {
  const values = new Float32Array(totalSize(tensors));
  await readInto(tensors, values);
  return values;
}

/** Floats in shared memory: a collective running on another thread reads and writes them in place. */
function sharedFloats(size: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(size * 4));
}

/**
 * Each collective's all-reduce arrays, reused from step to step by slot (0: the step's flat buffer,
 * 1 + k: bucket k): a fresh gradient-sized array every step costs garbage collections (see
 * src/backend/tensor-io.ts).
 */
const sharedPools = new WeakMap<StepCollective, Float32Array[]>();

/** The first `size` floats of the collective's array in `slot`, grown to hold them. */
function pooledFloats(collective: StepCollective, slot: number, size: number): Float32Array {
  let pool = sharedPools.get(collective);
  if (!pool) sharedPools.set(collective, (pool = []));
  let floats = pool[slot];
  if (floats === undefined || floats.length < size) pool[slot] = floats = sharedFloats(size);
  return floats.subarray(0, size);
}

/** Where one gradient lies in the buckets. */
interface BucketSlot {
  group: string;
  name: string;
  shape: number[];
  bucket: number;
}

/**
 * DDP's reducer, for the backward pass of a step's last micro-batch: each gradient joins the sum of
 * the earlier micro-batches as soon as the walk has made it final, is copied into the bucket being
 * filled, and a full bucket's all-reduce starts at once, so the ring moves the first buckets (the
 * decoder's, last layers first) while the rest of the backward pass computes. A ring on its own
 * thread does so by itself; for one on this thread the walk pauses between kernels while an
 * all-reduce is in flight. Every process fills the buckets in the tape's order, which is the same
 * everywhere, so bucket k holds the same gradients on every rank.
 */
export class OverlappedReducer {
  private readonly slots: BucketSlot[] = [];
  private readonly launched: Promise<void>[] = [];
  private bucket = 0;
  private filled = 0;
  /** Reads into the bucket being filled that a backend without synchronous access still has under way. */
  private reads: Promise<void>[] = [];
  /** Once a bucket waited for reads: settles when the last launched bucket's all-reduce has started. */
  private earlierStarted: Promise<void> | undefined;
  private inFlight = 0;
  private failure: Error | undefined;
  private bytes = 0;
  /** Per launched all-reduce, once done: when it began moving data and when the peer's first frame came. */
  private readonly timings: { startedAt: number; firstFrameAt: number }[] = [];
  /** Time the walk stood still for the ring (event-loop turns, which also run whatever else is queued). */
  pausedMs = 0;
  /**
   * The thread's own communication work while the walk ran: copying gradients into buckets and
   * starting their all-reduces, and the ring's sending, receiving and summing in the pauses. The
   * rest of a pause is other queued work (a garbage collection, the data loader), not communication.
   */
  commWorkMs = 0;

  constructor(
    private readonly collective: StepCollective,
    private readonly bucketElements: number,
  ) {}

  /**
   * Runs the walk that `makeWalk` builds around this reducer's gradient hook, pausing for the ring
   * between kernels; each gradient g becomes accumulated + weight * g before it is sent. A failed
   * all-reduce stops the walk (which frees what it holds) and is thrown.
   */
  async run<T>(
    makeWalk: (onGradient: OnGradient) => Generator<void, T>,
    accumulated: Record<string, tf.NamedTensorMap>,
    weight: number,
  ): Promise<T> {
    const walk = makeWalk((group, name, grad) => {
      const start = performance.now();
      const earlier = accumulated[group]?.[name];
      // A step of one micro-batch sends the gradient as it is (weight 1): no copy to make.
      if (earlier === undefined && weight === 1) this.add(group, name, grad);
      else {
        const sum = addWeighted(earlier, grad, weight);
        this.add(group, name, sum);
        sum.dispose();
      }
      this.commWorkMs += performance.now() - start;
    });
    // A ring on this thread moves bytes only in the walk's pauses, and that work is this thread's.
    const pauses = !this.collective.progressesInBackground;
    const ringBusyBefore = this.collective.stats().busyMs;
    for (let next = walk.next(); ; next = walk.next()) {
      if (next.done) {
        if (pauses) this.commWorkMs += this.collective.stats().busyMs - ringBusyBefore;
        return next.value;
      }
      if (this.inFlight > 0 && pauses) {
        const paused = performance.now();
        await new Promise((resolve) => setImmediate(resolve));
        this.pausedMs += performance.now() - paused;
      }
      if (this.failure) walk.throw(this.failure);
    }
  }

  /**
   * Sends the last bucket, waits for all, and returns the averaged gradients (new tensors), the
   * bytes reduced, and of the time waited here the part spent waiting for a slower peer to send
   * (its lag, not the cost of moving bytes).
   */
  async finish(): Promise<{ groups: Record<string, tf.NamedTensorMap>; bytes: number; peerWaitMs: number }> {
    const backwardEnd = performance.now();
    if (this.filled > 0) this.launch();
    await Promise.all(this.launched);
    if (this.failure) throw this.failure;
    // The all-reduces run one after another, so their waits after the backward pass never overlap.
    let peerWaitMs = 0;
    for (const { startedAt, firstFrameAt } of this.timings) peerWaitMs += Math.max(0, firstFrameAt - Math.max(startedAt, backwardEnd));
    const groups: Record<string, tf.NamedTensorMap> = {};
    for (let k = 0; k < this.bucket; k++) {
      const inBucket = this.slots.filter((slot) => slot.bucket === k);
      const size = inBucket.reduce((n, slot) => n + tf.util.sizeFromShape(slot.shape), 0);
      const tensors = tensorsFrom(
        this.bucketFloats(k, size),
        inBucket.map((slot) => slot.shape),
      );
      inBucket.forEach((slot, i) => ((groups[slot.group] ??= {})[slot.name] = tensors[i]!));
    }
    return { groups, bytes: this.bytes, peerWaitMs };
  }

  private add(group: string, name: string, grad: tf.Tensor): void {
    if (this.filled > 0 && this.filled + grad.size > this.bucketElements) this.launch();
    // A gradient larger than a bucket gets a bucket of its own size, as in DDP.
    const bucket = this.bucketFloats(this.bucket, Math.max(this.bucketElements, grad.size));
    // Done at once on wasm; on other backends under way, and the bucket goes out once it is done.
    const read = startReadInto([grad], bucket.subarray(this.filled, this.filled + grad.size));
    if (read) this.reads.push(read.catch((e: unknown) => this.fail(e)));
    this.slots.push({ group, name, shape: grad.shape, bucket: this.bucket });
    this.filled += grad.size;
    // A full bucket goes at once, not when the next gradient arrives: that may be a whole layer later.
    if (this.filled >= this.bucketElements) this.launch();
  }

  /** Records the first failure (a read or an all-reduce): the walk stops with it, finish throws it. */
  private fail(e: unknown): void {
    this.failure ??= e instanceof Error ? e : new Error(String(e));
  }

  /** Bucket k's array, its first `size` floats; every step fills the same buckets. */
  private bucketFloats(k: number, size: number): Float32Array {
    return pooledFloats(this.collective, 1 + k, size);
  }

  private launch(): void {
    const values = this.bucketFloats(this.bucket, this.filled);
    this.bytes += values.byteLength;
    this.inFlight += 1;
    const reads = this.reads;
    this.reads = [];
    const reduce = (): Promise<void> => this.collective.allReduceMean([values]);
    let reduced: Promise<void>;
    if (reads.length === 0 && this.earlierStarted === undefined) {
      // The values are all there (wasm): started at once, so that a ring on its own thread moves
      // them while the walk goes on without pausing.
      reduced = reduce();
    } else {
      // Once the backend has handed the values over, and after every earlier bucket's all-reduce
      // has started: every rank must start them in the same order, whenever its reads finish.
      const ready = Promise.all([this.earlierStarted, ...reads]);
      reduced = ready.then(() => {
        if (this.failure) throw this.failure;
        return reduce();
      });
      // Settles after the callback above has run (callbacks run in the order they were added).
      this.earlierStarted = ready.then(() => undefined);
    }
    this.launched.push(
      reduced
        .then(() => {
          // Read at once: the next all-reduce cannot finish, and overwrite these, before I/O runs.
          const { lastAllReduceStartedAt: startedAt, lastAllReduceWaitMs: waitMs } = this.collective.stats();
          this.timings.push({ startedAt, firstFrameAt: startedAt + waitMs });
        })
        .catch((e: unknown) => this.fail(e))
        .finally(() => {
          this.inFlight -= 1;
        }),
    );
    this.bucket += 1;
    this.filled = 0;
  }
}

/** What synchronising one step cost, for the step record (seconds; all 0 with one worker). */
export interface SyncReport {
  bytes: number;
  /** After the backward pass: waiting for the all-reduce to finish. */
  seconds: number;
  /** Of `seconds`, waiting for a slower peer (a straggler), not moving bytes. */
  waitSeconds: number;
  /** The backward pass standing still for a ring on this thread (see StepInfo). */
  pauseSeconds: number;
  /** Communication work the backward pass did itself (see StepInfo). */
  inBackwardSeconds: number;
  /** Any worker asked to stop (Ctrl-C): all stop after this step. */
  stop: boolean;
  /** BatchNorm statistics pooled over workers (new tensors with several workers: disposeStatistics frees them). */
  statistics: PendingStatistics[];
}

/**
 * The one place a training step meets the collective. A step hands it each micro-batch's gradient
 * walk (`backward`), then averages once (`average`): with several workers and overlap, the last
 * micro-batch's gradients already leave in buckets while its backward pass runs, as DDP's reducer
 * does; otherwise everything goes in `average`. With one worker both are plain accumulation.
 */
export class StepSync {
  private reducer: OverlappedReducer | undefined;

  constructor(
    readonly collective: StepCollective,
    private readonly bucketBytes: number,
    private readonly overlap: boolean,
  ) {}

  /**
   * Runs one micro-batch's walk, adding weight x its gradients into `grads`; returns its terms and
   * objectives (the caller disposes them).
   */
  async backward(
    makeWalk: (onGradient: OnGradient) => Generator<void, StepGradients>,
    grads: Record<string, tf.NamedTensorMap>,
    weight: number,
    last: boolean,
  ): Promise<Pick<StepGradients, 'terms' | 'objectives'>> {
    const bucketed = last && this.overlap && this.collective.worldSize > 1;
    if (bucketed) this.reducer = new OverlappedReducer(this.collective, this.bucketBytes / 4);
    const result = bucketed ? await this.reducer!.run(makeWalk, grads, weight) : runToEnd(makeWalk(() => {}));
    if (!bucketed) accumulateGradients(grads, result.groups, weight);
    disposeGradients({ groups: result.groups, terms: {}, objectives: {} });
    return { terms: result.terms, objectives: result.objectives };
  }

  /** Averages gradients (in place), scalars (in place) and BatchNorm statistics over workers; agrees on stopping. */
  async average(
    grads: Record<string, tf.NamedTensorMap>,
    scalars: Record<string, number>,
    statistics: readonly PendingStatistics[],
    stopRequested: boolean,
  ): Promise<SyncReport> {
    const start = performance.now();
    const reducer = this.reducer;
    this.reducer = undefined;
    const reduced = await averageAcrossWorkers(this.collective, grads, scalars, statistics, stopRequested, reducer);
    const seconds = this.collective.worldSize > 1 ? (performance.now() - start) / 1000 : 0;
    return {
      bytes: reduced.bytes,
      seconds,
      // Part of the all-reduce by definition; the clamp absorbs rounding between the ring thread's clock and this one's.
      waitSeconds: Math.min(reduced.waitMs / 1000, seconds),
      pauseSeconds: (reducer?.pausedMs ?? 0) / 1000,
      inBackwardSeconds: (reducer?.commWorkMs ?? 0) / 1000,
      stop: reduced.stop,
      statistics: reduced.statistics,
    };
  }

  /** Frees the pooled statistics `average` made (none with one worker, where they are the layers' own). */
  disposeStatistics(report: SyncReport): void {
    if (this.collective.worldSize > 1) tf.dispose(report.statistics.flatMap((s) => [s.shiftedSum, s.shiftedSquares]));
  }
}

/**
 * Averages, over all workers and in place, the per-group gradients (replaced by new tensors) and the
 * loss terms; sums every BatchNorm layer's batch statistics over the workers; and agrees on whether
 * to stop after this step. Gradients that a reducer already sent during the backward pass are taken
 * from it; otherwise they go here, names sorted, so every worker lays the buffers out identically.
 * Returns the bytes reduced (0 with one worker), the part of the time after the backward pass spent
 * waiting for a slower peer, the stop decision and the pooled statistics (new tensors the caller disposes, or
 * with one worker the given ones).
 */
export async function averageAcrossWorkers(
  collective: StepCollective,
  grads: Record<string, tf.NamedTensorMap>,
  terms: Record<string, number>,
  statistics: readonly PendingStatistics[],
  stopRequested: boolean,
  reducer?: OverlappedReducer,
): Promise<{ bytes: number; waitMs: number; stop: boolean; statistics: PendingStatistics[] }> {
  const { worldSize } = collective;
  if (worldSize === 1) return { bytes: 0, waitMs: 0, stop: stopRequested, statistics: [...statistics] };
  const bucketed = await reducer?.finish();
  if (bucketed) {
    for (const [group, map] of Object.entries(bucketed.groups)) {
      const target = (grads[group] ??= {});
      for (const [name, averaged] of Object.entries(map)) {
        // The sum of the earlier micro-batches, which the reducer added in before sending.
        target[name]?.dispose();
        target[name] = averaged;
      }
    }
  }
  const slots: { group: string; name: string }[] = [];
  for (const group of bucketed ? [] : Object.keys(grads).sort()) {
    for (const name of Object.keys(grads[group]!).sort()) slots.push({ group, name });
  }
  const termNames = Object.keys(terms).sort();
  const gradTensors = slots.map(({ group, name }) => grads[group]![name]!);
  const tensors = [...gradTensors, ...statistics.flatMap((s) => [s.shiftedSum, s.shiftedSquares])];
  const values = pooledFloats(collective, 0, totalSize(tensors));
  await readInto(tensors, values);
  // The last slot votes on stopping: any worker asked to stop (Ctrl-C) makes all stop after this
  // same step, so none is left waiting in an all-reduce its peers never join.
  const scalars = Float32Array.from([...termNames.map((n) => terms[n]!), ...statistics.map((s) => s.count), stopRequested ? 1 : 0]);
  await collective.allReduceMean([values, scalars]);
  // Statistics are sums: the mean over workers times their number.
  const gradSize = totalSize(gradTensors);
  for (let i = gradSize; i < values.length; i++) values[i]! *= worldSize;
  const averaged = tensorsFrom(
    values,
    tensors.map((t) => t.shape),
  );
  slots.forEach(({ group, name }, i) => {
    grads[group]![name]!.dispose();
    grads[group]![name] = averaged[i]!;
  });
  const pooled = statistics.map((_, i) => ({
    count: Math.round(scalars[termNames.length + i]! * worldSize),
    shiftedSum: averaged[slots.length + 2 * i]! as tf.Tensor1D,
    shiftedSquares: averaged[slots.length + 2 * i + 1]! as tf.Tensor1D,
  }));
  termNames.forEach((n, i) => {
    terms[n] = scalars[i]!;
  });
  return {
    bytes: (bucketed?.bytes ?? 0) + values.byteLength + scalars.byteLength,
    waitMs: (bucketed?.peerWaitMs ?? 0) + collective.stats().lastAllReduceWaitMs,
    stop: scalars[scalars.length - 1]! > 0,
    statistics: pooled,
  };
}

/** Makes every worker start from rank 0's weights and shared state. */
export async function broadcastWeights(collective: StepCollective, variables: tf.Variable[]): Promise<void> {
  if (collective.worldSize === 1) return;
  const values = await readFlat(variables);
  await collective.broadcast([values], 0);
  tensorsFrom(
    values,
    variables.map((v) => v.shape),
  ).forEach((value, i) => {
    variables[i]!.assign(value);
    value.dispose();
  });
}

/** A 32-bit FNV-1a-style hash, word by word, over the exact bits of every variable: equal on all workers unless they diverged. */
export async function weightsChecksum(variables: tf.Variable[]): Promise<number> {
  const values = await readFlat(variables);
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) {
    h ^= words[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class ReplicaDivergenceError extends Error {
  override name = 'ReplicaDivergenceError';
}

/**
 * Compares the weights checksum of every worker with rank 0's; throws on every worker when any
 * differs. The checksum travels as two 16-bit halves so float32 carries it exactly.
 */
export async function checkReplicasAgree(collective: StepCollective, variables: tf.Variable[], step: number): Promise<void> {
  if (collective.worldSize === 1) return;
  const mine = await weightsChecksum(variables);
  const root = new Float32Array([mine >>> 16, mine & 0xffff]);
  await collective.broadcast([root], 0);
  const differs = new Float32Array([root[0] === mine >>> 16 && root[1] === (mine & 0xffff) ? 0 : 1]);
  await collective.allReduceMean([differs]);
  if (differs[0]! > 0) {
    throw new ReplicaDivergenceError(
      `replicas diverged at step ${step}: the weights of at least one worker differ from rank 0's (checksum ${mine.toString(16)} on rank ${collective.rank}); stopping rather than training inconsistent copies`,
    );
  }
}
