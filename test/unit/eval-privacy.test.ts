// Closest training images, percentiles and the membership AUROC on numbers small enough to check by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { chanceHalfWidth, membershipScore } from '../../src/eval/membership.ts';
import { closestPairs, compareDistances, nearestRows, percentile, rmsDistances, shareCloser } from '../../src/eval/privacy.ts';

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);
}

test('nearest rows: distance to and index of the closest reference point, across chunks, leaking no tensor', async () => {
  // Reference points (0, 0), (3, 0), (0, 4), (10, 10); queries (1, 0) -> (0, 0) at 1, (3, 4) -> (0, 4) at 3
  // (not (3, 0) at 4), (9, 9) -> (10, 10) at sqrt 2, (0, 0) -> itself at 0.
  const reference = Float32Array.from([0, 0, 3, 0, 0, 4, 10, 10]);
  const queries = Float32Array.from([1, 0, 3, 4, 9, 9, 0, 0]);
  const before = tf.memory().numTensors;
  for (const chunk of [1, 2, 512]) {
    const nearest = await nearestRows(queries, 4, reference, 4, 2, chunk);
    assert.deepEqual([...nearest.index], [0, 2, 3, 0], `indices, chunk ${chunk}`);
    [1, 3, Math.SQRT2, 0].forEach((want, i) => close(nearest.distance[i], want, 1e-5, `distance ${i}, chunk ${chunk}`));
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  // 2 values per row: RMS = Euclidean / sqrt 2.
  close(rmsDistances({ distance: Float64Array.from([2]), index: Int32Array.from([0]) }, 2).distance[0], Math.SQRT2, 1e-12, 'rms');
});

test('percentiles interpolate between order statistics as numpy does', () => {
  // Rank p/100 * (n - 1): 1st percentile of 1..5 is 1 + 0.04 (1 + 0.04 * 1).
  close(percentile([5, 1, 4, 2, 3], 1), 1.04, 1e-12, 'p1');
  close(percentile([5, 1, 4, 2, 3], 50), 3, 1e-12, 'median');
  close(percentile([5, 1, 4, 2, 3], 100), 5, 1e-12, 'p100');
  close(percentile([0, 10], 25), 2.5, 1e-12, 'between two');
});

test('samples are read against the held-out percentiles of the distance to the closest training image', () => {
  // Held-out distances 0, 1, ..., 100: p1 = 1, p5 = 5, p99 = 99, median 50.
  const heldOut = Array.from({ length: 101 }, (_, i) => i);
  // Two copies (0.5 < p1), one at 3 (< p5 only), one at 1 exactly (not strictly below p1), three far off (> 99).
  const samples = [0.5, 0.5, 3, 1, 120, 150, 200, 50, 60, 70];
  const c = compareDistances(samples, heldOut);
  close(c.heldout_p1, 1, 1e-12, 'p1');
  close(c.heldout_p5, 5, 1e-12, 'p5');
  close(c.heldout_p99, 99, 1e-12, 'p99');
  close(c.heldout_median, 50, 1e-12, 'median');
  close(c.share_below_heldout_p1, 2 / 10, 1e-12, 'below p1');
  close(c.share_below_heldout_p5, 4 / 10, 1e-12, 'below p5');
  close(c.share_above_heldout_p99, 3 / 10, 1e-12, 'above p99');
  close(c.sample_min, 0.5, 1e-12, 'min');
  // Sorted: 0.5 0.5 1 3 50 60 70 120 150 200: the median is between 50 and 60.
  close(c.sample_median, 55, 1e-12, 'sample median');
});

test('closest pairs: the samples nearest a training image, closest first, ties by sample index', () => {
  const pairs = closestPairs({ distance: Float64Array.from([0.3, 0.1, 0.3, 0.05]), index: Int32Array.from([7, 8, 9, 10]) }, 3);
  assert.deepEqual(pairs, [
    { sample: 3, train: 10, pixel_distance: 0.05 },
    { sample: 1, train: 8, pixel_distance: 0.1 },
    { sample: 0, train: 7, pixel_distance: 0.3 },
  ]);
});

test('membership AUROC: the share of (training, held-out) pairs where the held-out image scores worse', () => {
  // Held-out 2.5 beats training 1 and 2, not 3; held-out 4 beats all three: 5 of 6 pairs.
  const m = membershipScore([1, 2, 3], [2.5, 4]);
  close(m.auroc, 5 / 6, 1e-12, 'auroc');
  close(m.train_mean, 2, 1e-12, 'train mean');
  close(m.heldout_mean, 3.25, 1e-12, 'held-out mean');
  // Alike scores: one half.
  close(membershipScore([1, 1], [1, 1]).auroc, 0.5, 1e-12, 'ties');
  // 400 vs 400: 1.96 sqrt(801 / (12 * 160000)) = 0.0400327.
  close(chanceHalfWidth(400, 400), 0.0400327, 1e-6, 'chance half-width');
});

test('share closer to training: strictly closer counts 1, a tie one half', () => {
  // 1 < 2 counts, 3 = 3 counts one half, 5 > 4 does not: 1.5 of 3.
  close(shareCloser([1, 3, 5], [2, 3, 4]), 0.5, 1e-12, 'share');
  assert.throws(() => shareCloser([1], [1, 2]), /equal non-empty lists, got 1 and 2/);
});
