// Which samples each consumer reads, with DistributedSampler semantics and one twist: the GLOBAL
// order is fixed whatever the world size. Epoch e's permutation is a pure function of (seed, e);
// step s takes the global batch perm[s*B, (s+1)*B) and rank r of w takes its contiguous slice
// [r*B/w, (r+1)*B/w). So 1 worker and 4 workers see the same global batches at the same steps,
// which is what makes a run's result independent of how many machines ran it.
//
// The last partial global batch: dropLast=true drops it; dropLast=false pads it to a full B by
// wrapping around to the start of the same epoch's permutation (global position p reads perm[p mod N]),
// so a few samples appear twice in that epoch.
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import type { ShardSpec } from './types.ts';

/** Fisher-Yates permutation of 0..n-1 for (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const draw = mulberry32(hashKeys(seed, Stream.dataOrder, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(draw() * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

export interface SamplerOptions {
  datasetSize: number;
  globalBatch: number;
  shard: ShardSpec;
  dropLast: boolean;
}

export class DistributedSampler {
  readonly stepsPerEpoch: number;
  /** Samples this rank reads per step: globalBatch / worldSize. */
  readonly localBatch: number;
  private cached: { epoch: number; perm: Int32Array } | undefined;

  constructor(private readonly options: SamplerOptions) {
    const { datasetSize: n, globalBatch: b, shard } = options;
    if (!Number.isInteger(b) || b <= 0) throw new RangeError(`global batch must be a positive integer, got ${b}`);
    if (!Number.isInteger(shard.worldSize) || shard.worldSize <= 0) throw new RangeError(`world size must be >= 1, got ${shard.worldSize}`);
    if (!Number.isInteger(shard.rank) || shard.rank < 0 || shard.rank >= shard.worldSize) {
      throw new RangeError(`rank ${shard.rank} outside 0..${shard.worldSize - 1}`);
    }
    if (b % shard.worldSize !== 0) {
      throw new RangeError(`global batch ${b} is not divisible by world size ${shard.worldSize}`);
    }
    this.localBatch = b / shard.worldSize;
    this.stepsPerEpoch = options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** The permutation of an epoch (kept for the epoch being read). */
  permutation(epoch: number): Int32Array {
    if (this.cached?.epoch !== epoch) {
      this.cached = { epoch, perm: epochPermutation(this.options.datasetSize, this.options.shard.seed, epoch) };
    }
    return this.cached.perm;
  }

  /** Dataset indices this rank reads at (epoch, step). */
  indices(epoch: number, step: number): Int32Array {
    if (!Number.isInteger(step) || step < 0 || step >= this.stepsPerEpoch) {
      throw new RangeError(`step ${step} outside 0..${this.stepsPerEpoch - 1}`);
    }
    const perm = this.permutation(epoch);
    const n = perm.length;
    const start = step * this.options.globalBatch + this.options.shard.rank * this.localBatch;
    const out = new Int32Array(this.localBatch);
    for (let i = 0; i < this.localBatch; i++) out[i] = perm[(start + i) % n];
    return out;
  }
}
