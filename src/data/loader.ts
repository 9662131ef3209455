// The streaming loader: sampler shard -> records -> decode + transform (piscina threads, or the
// calling thread with threads=0) -> bounded prefetch queue -> Batch. Each Batch is this rank's
// share (globalBatch / worldSize samples) of one global step.
//
// A sample that cannot be decoded is reported once (log), counted in `skipped`, and its slot is
// filled with a copy of another sample of the same batch, so every batch keeps its full shape on
// every rank (all ranks take the same number of equal-sized steps). strict=true makes it fatal.
import { Piscina } from 'piscina';
import { CorruptImageError, DatasetError } from './errors.ts';
import { decodeBatch, type DecodeResult, type DecodeTask } from './decode.ts';
import { DistributedSampler } from './sampler.ts';
import type { SampleTransform } from './transforms.ts';
import type { Batch, DatasetSplit, SampleRecord, ShardSpec } from './types.ts';
import { ownModule, RUNNING_FROM_SOURCE } from '../util/module-path.ts';

export interface LoaderOptions {
  split: DatasetSplit;
  imageSize: number;
  channels: 1 | 3;
  resize: 'area' | 'bilinear';
  augment: { flip: boolean; rot90: boolean };
  globalBatch: number;
  shard: ShardSpec;
  dropLast: boolean;
  /** Decode threads; 0 decodes on the calling thread. */
  threads: number;
  /** Batches decoded ahead of the consumer (at least 1). */
  prefetch: number;
  /** Stop at the first undecodable image instead of skipping it. */
  strict: boolean;
  log?: (line: string) => void;
}

export interface Loader {
  stepsPerEpoch: number;
  datasetSize: number;
  /** This rank's batches of an epoch, from `fromStep` (resume) to the end. */
  batches(epoch: number, fromStep?: number): AsyncIterable<Batch>;
  /** Distinct samples skipped so far because they could not be decoded. */
  readonly skipped: number;
  close(): Promise<void>;
}

// From source, a plain-JS entry that loads tsx in the thread (a loader registered in the main thread
// does not reach worker threads), then workers/decode-worker.ts; compiled, that worker itself.
const WORKER = (RUNNING_FROM_SOURCE ? new URL('../../workers/decode-worker-entry.js', import.meta.url) : ownModule('../../workers/decode-worker.ts', import.meta.url)).href;

export function createLoader(opts: LoaderOptions): Loader {
  return new StreamingLoader(opts);
}

class StreamingLoader implements Loader {
  readonly stepsPerEpoch: number;
  readonly datasetSize: number;
  private readonly sampler: DistributedSampler;
  private readonly transform: SampleTransform;
  private readonly pool: Piscina | undefined;
  private readonly bad = new Set<number>();
  private readonly labelRows: Promise<Uint8Array[]>;

  constructor(private readonly opts: LoaderOptions) {
    const { split } = opts;
    this.datasetSize = split.length;
    if (split.length === 0) throw new DatasetError(split.description, 'empty dataset: the split has no samples');
    this.sampler = new DistributedSampler({
      datasetSize: split.length,
      globalBatch: opts.globalBatch,
      shard: opts.shard,
      dropLast: opts.dropLast,
    });
    this.stepsPerEpoch = this.sampler.stepsPerEpoch;
    if (this.stepsPerEpoch === 0) {
      throw new DatasetError(
        split.description,
        `${split.length} samples make no full global batch of ${opts.globalBatch} (drop_last is on): lower the batch size or set drop_last false`,
      );
    }
    this.transform = {
      size: opts.imageSize,
      channels: opts.channels,
      resize: opts.resize,
      augment: opts.augment,
      seed: opts.shard.seed,
    };
    this.labelRows = split.labels();
    this.labelRows.catch(() => undefined); // surfaces with the first batch
    this.pool =
      opts.threads > 0 ? new Piscina({ filename: WORKER, minThreads: opts.threads, maxThreads: opts.threads }) : undefined;
  }

  get skipped(): number {
    return this.bad.size;
  }

  async *batches(epoch: number, fromStep = 0): AsyncGenerator<Batch> {
    const depth = Math.max(1, this.opts.prefetch);
    const queue: Promise<Batch>[] = [];
    let next = fromStep;
    const enqueue = (): void => {
      const batch = this.produce(epoch, next++);
      // Marked handled now; the error still surfaces when this batch is awaited in order.
      batch.catch(() => undefined);
      queue.push(batch);
    };
    try {
      while (next < this.stepsPerEpoch && queue.length < depth) enqueue();
      while (queue.length > 0) {
        const batch = await (queue.shift() as Promise<Batch>);
        if (next < this.stepsPerEpoch) enqueue();
        yield batch;
      }
    } finally {
      // The consumer stopped early or a batch failed: let the work in flight finish before returning.
      await Promise.allSettled(queue);
    }
  }

  private async produce(epoch: number, step: number): Promise<Batch> {
    const indices = this.sampler.indices(epoch, step);
    const split = this.opts.split;
    const list = Array.from(indices);
    // Records' pixel buffers are handed to the decode thread (transferred): records() promises
    // buffers it does not keep. Images from read() may be the split's own, so they are copied.
    const owned = split.records !== undefined;
    const records: SampleRecord[] = split.records
      ? await split.records(list)
      : (await split.read(list)).map((image) => ({ kind: 'pixels', image }));
    const task: DecodeTask = { records, indices, epoch, transform: this.transform };
    const result: DecodeResult = this.pool
      ? await this.pool.run(task, { transferList: owned ? transferablesOf(records) : [] })
      : await decodeBatch(task);
    this.replaceFailures(result, indices, step);
    return this.assemble(result.images, indices, await this.labelRows);
  }

  private replaceFailures(result: DecodeResult, indices: Int32Array, step: number): void {
    if (result.failures.length === 0) return;
    const first = result.failures[0];
    if (this.opts.strict) {
      throw new CorruptImageError(this.opts.split.description, `sample ${indices[first.position]}: ${first.message} (data.strict is on)`);
    }
    const failed = new Set(result.failures.map((f) => f.position));
    for (const f of result.failures) {
      const index = indices[f.position];
      if (!this.bad.has(index)) {
        this.bad.add(index);
        this.opts.log?.(`warning: skipped sample ${index}: ${f.message}`);
      }
    }
    const n = indices.length;
    if (failed.size === n) {
      throw new DatasetError(this.opts.split.description, `every sample of step ${step} failed to decode (first: ${first.message})`);
    }
    const stride = result.images.length / n;
    for (const position of failed) {
      let donor = (position + 1) % n;
      while (failed.has(donor)) donor = (donor + 1) % n;
      result.images.copyWithin(position * stride, donor * stride, (donor + 1) * stride);
      indices[position] = indices[donor];
    }
  }

  private assemble(images: Float32Array, indices: Int32Array, labelRows: Uint8Array[]): Batch {
    const { labelKind, labelWidth } = this.opts.split;
    const n = indices.length;
    const labels = new Float32Array(n * labelWidth);
    for (let i = 0; i < n; i++) {
      const row = labelRows[indices[i]];
      if (labelKind === 'class') labels[i * labelWidth + row[0]] = 1;
      else if (labelKind === 'multilabel') for (let j = 0; j < labelWidth; j++) labels[i * labelWidth + j] = row[j];
    }
    return { images, labels, indices, n, size: this.opts.imageSize, channels: this.opts.channels, labelWidth };
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** Whole pixel buffers of records, which the decode thread may take over (see DatasetSplit.records). */
function transferablesOf(records: SampleRecord[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const r of records) {
    if (r.kind === 'pixels' && r.image.data.buffer instanceof ArrayBuffer && r.image.data.byteLength === r.image.data.buffer.byteLength) {
      buffers.add(r.image.data.buffer);
    }
  }
  return [...buffers];
}
