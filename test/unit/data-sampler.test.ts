import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DistributedSampler, epochPermutation } from '../../src/data/sampler.ts';

const shard = (rank: number, worldSize: number, seed = 42) => ({ seed, rank, worldSize });

function epochOf(sampler: DistributedSampler, epoch: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < sampler.stepsPerEpoch; s++) out.push(...sampler.indices(epoch, s));
  return out;
}

describe('epoch permutation', () => {
  it('is a permutation, stable for (seed, epoch), different across epochs and seeds', () => {
    const p = epochPermutation(1000, 5, 0);
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.deepEqual([...epochPermutation(1000, 5, 0)], [...p]);
    assert.notDeepEqual([...epochPermutation(1000, 5, 1)], [...p]);
    assert.notDeepEqual([...epochPermutation(1000, 6, 0)], [...p]);
  });
});

describe('distributed sampler', () => {
  it('shards of every rank are disjoint and together make the epoch', () => {
    const n = 103;
    const b = 12;
    for (const w of [1, 2, 3, 4]) {
      const all: number[] = [];
      for (let r = 0; r < w; r++) {
        const s = new DistributedSampler({ datasetSize: n, globalBatch: b, shard: shard(r, w), dropLast: true });
        assert.equal(s.stepsPerEpoch, 8);
        assert.equal(s.localBatch, b / w);
        all.push(...epochOf(s, 2));
      }
      assert.equal(new Set(all).size, all.length, `w=${w}: no sample twice`);
      assert.equal(all.length, 96);
      // The union is exactly the first 8 global batches of the permutation.
      assert.deepEqual(
        all.sort((x, y) => x - y),
        [...epochPermutation(n, 42, 2).subarray(0, 96)].sort((x, y) => x - y),
      );
    }
  });

  it('keeps the same global order for world sizes 1 and 2', () => {
    const one = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(0, 1), dropLast: true });
    const r0 = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(0, 2), dropLast: true });
    const r1 = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(1, 2), dropLast: true });
    for (let step = 0; step < one.stepsPerEpoch; step++) {
      assert.deepEqual([...one.indices(1, step)], [...r0.indices(1, step), ...r1.indices(1, step)]);
    }
  });

  it('is stable across runs and differs across epochs', () => {
    const make = () => new DistributedSampler({ datasetSize: 64, globalBatch: 16, shard: shard(1, 4), dropLast: true });
    assert.deepEqual(epochOf(make(), 0), epochOf(make(), 0));
    assert.notDeepEqual(epochOf(make(), 0), epochOf(make(), 1));
  });

  it('drop_last=false pads the last global batch by wrapping to the start of the permutation', () => {
    const n = 10;
    const s = new DistributedSampler({ datasetSize: n, globalBatch: 4, shard: shard(0, 1), dropLast: false });
    assert.equal(s.stepsPerEpoch, 3);
    const perm = epochPermutation(n, 42, 0);
    assert.deepEqual([...s.indices(0, 2)], [perm[8], perm[9], perm[0], perm[1]]);
    assert.deepEqual(new Set(epochOf(s, 0)).size, n, 'every sample at least once');
    const dropped = new DistributedSampler({ datasetSize: n, globalBatch: 4, shard: shard(0, 1), dropLast: true });
    assert.equal(dropped.stepsPerEpoch, 2);
  });

  it('requires the global batch to divide among the ranks and a valid rank', () => {
    assert.throws(
      () => new DistributedSampler({ datasetSize: 10, globalBatch: 6, shard: shard(0, 4), dropLast: true }),
      /not divisible by world size 4/,
    );
    assert.throws(
      () => new DistributedSampler({ datasetSize: 10, globalBatch: 4, shard: shard(2, 2), dropLast: true }),
      /rank 2 outside 0\.\.1/,
    );
    const s = new DistributedSampler({ datasetSize: 10, globalBatch: 4, shard: shard(0, 2), dropLast: true });
    assert.throws(() => s.indices(0, 2), /step 2 outside 0\.\.1/);
  });
});
