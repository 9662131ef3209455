// How a list of Float32Arrays is cut for the ring: one flat index space over all of them, split into
// buckets, each bucket into one segment per rank, each segment into chunks (one frame each). Every rank
// computes the same plan from the same sizes, so frames carry only (step, bucket, chunk) indices.

/** A contiguous range of flat element indices, end exclusive. */
export interface ElementRange {
  start: number;
  end: number;
}

/** A list of Float32Arrays seen as one vector without copying them. */
export class FlatLayout {
  readonly totalElements: number;
  /** starts[i] is the flat index of buffers[i][0]. */
  private readonly starts: number[];

  constructor(readonly buffers: readonly Float32Array[]) {
    this.starts = [];
    let total = 0;
    for (const b of buffers) {
      this.starts.push(total);
      total += b.length;
    }
    this.totalElements = total;
  }

  /** Calls fn with views of the buffers covering [range.start, range.end), in order. */
  forEachPiece(range: ElementRange, fn: (piece: Float32Array) => void): void {
    let i = this.bufferIndexOf(range.start);
    let at = range.start;
    while (at < range.end) {
      const buffer = this.buffers[i];
      const offset = at - this.starts[i];
      const take = Math.min(buffer.length - offset, range.end - at);
      if (take > 0) fn(buffer.subarray(offset, offset + take));
      at += take;
      i += 1;
    }
  }

  /** Index of the buffer holding flat element `index` (binary search: layouts can have thousands of variables). */
  private bufferIndexOf(index: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/**
 * Buckets of `bucketElements`, each cut into `worldSize` near-equal segments, each segment into chunks of
 * at most `chunkElements`. A segment always has at least one chunk, possibly empty: then every rank
 * sends the same number of frames per step, and a step still orders the ranks (barrier relies on it).
 */
export class RingPlan {
  readonly bucketCount: number;
  /** chunks[bucket][segment] */
  private readonly chunks: ElementRange[][][];

  constructor(totalElements: number, worldSize: number, bucketElements: number, chunkElements: number) {
    this.bucketCount = Math.max(1, Math.ceil(totalElements / bucketElements));
    this.chunks = [];
    for (let b = 0; b < this.bucketCount; b++) {
      const bucketStart = b * bucketElements;
      const bucketLength = Math.min(bucketElements, totalElements - bucketStart);
      const segments: ElementRange[][] = [];
      for (let k = 0; k < worldSize; k++) {
        const start = bucketStart + Math.floor((k * bucketLength) / worldSize);
        const end = bucketStart + Math.floor(((k + 1) * bucketLength) / worldSize);
        const ranges: ElementRange[] = [];
        for (let c = start; c < end; c += chunkElements) ranges.push({ start: c, end: Math.min(end, c + chunkElements) });
        if (ranges.length === 0) ranges.push({ start, end });
        segments.push(ranges);
      }
      this.chunks.push(segments);
    }
  }

  segmentChunks(bucket: number, segment: number): readonly ElementRange[] {
    return this.chunks[bucket][segment];
  }

  /** Frames carrying segment `segment` summed over all buckets. */
  framesOfSegment(segment: number): number {
    let frames = 0;
    for (const segments of this.chunks) frames += segments[segment].length;
    return frames;
  }
}
