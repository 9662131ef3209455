// Contracts of the data layer. A batch travels: reader -> transforms -> sampler shard ->
// prefetch queue -> trainer. Everything here is plain typed arrays (transferable between threads
// and processes); tensors are made only by the trainer.

/** What a dataset's labels are. */
export type LabelKind = 'none' | 'class' | 'multilabel';

/** One decoded image, HWC uint8, before transforms. */
export interface RawImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: 1 | 3;
}

/**
 * A sample as the loader's decode step receives it: pixels already decoded (npz members), or an
 * encoded image file that the decode worker reads and decodes itself (so the bytes never cross
 * threads twice).
 */
export type SampleRecord =
  | { kind: 'pixels'; image: RawImage }
  | { kind: 'file'; path: string };

/** A split of a dataset that can be read by index without holding it all in memory. */
export interface DatasetSplit {
  /** For messages: the file or folder and split, e.g. "data/retinamnist.npz[train]". */
  readonly description: string;
  readonly length: number;
  /** Native image shape, when every image has the same one (MedMNIST); undefined for folders. */
  readonly imageShape?: [number, number, 1 | 3];
  readonly labelKind: LabelKind;
  /** Label width: classes (one-hot) or findings (multi-hot); 0 without labels. */
  readonly labelWidth: number;
  readonly labelNames: string[];
  /** Labels of every sample (class index, or bitmask row for multi-label): for stats and TSTR. */
  labels(): Promise<Uint8Array[]>;
  /** Raw encoded or decoded records for these indices (in order). */
  read(indices: readonly number[]): Promise<RawImage[]>;
  /**
   * What the loader hands to its decode threads for these indices. Optional: a split without it
   * is read with read() on the calling thread. A 'pixels' record's buffer is transferred to the
   * decode thread, so it must be a fresh copy the split does not keep.
   */
  records?(indices: readonly number[]): Promise<SampleRecord[]>;
  close(): Promise<void>;
}

/** A batch ready for the model: NHWC float32 in [-1, 1], labels N x labelWidth (one-/multi-hot). */
export interface Batch {
  images: Float32Array;
  labels: Float32Array;
  /** Dataset indices of the samples, in order: what the sampler chose. */
  indices: Int32Array;
  n: number;
  size: number;
  channels: 1 | 3;
  labelWidth: number;
}

/** Which part of an epoch one consumer reads (DistributedSampler semantics, see sampler.ts). */
export interface ShardSpec {
  seed: number;
  rank: number;
  worldSize: number;
}
