// Precision and recall of k-NN manifolds on 2-D points whose balls can be counted by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kNearestRadii, precisionRecall } from '../../src/eval/precision-recall.ts';

// Real: the corners of a 2 x 2 square. Each corner's other points lie at 2, 2 and 2 sqrt 2, so its
// ball has radius 2 for k = 1 and k = 2, and 2 sqrt 2 for k = 3.
const REAL = [0, 0, 2, 0, 0, 2, 2, 2];
// Generated: two points inside the square, one 2.5 right of corner (2, 0), one far away at (9, 0).
const GENERATED = [1, 1, 1, 0.5, 4.5, 0, 9, 0];

test('k-NN radii are the distance to the k-th nearest other point', () => {
  assert.deepEqual([...kNearestRadii(REAL, 4, 2, 1)], [2, 2, 2, 2]);
  assert.deepEqual([...kNearestRadii(REAL, 4, 2, 3)], [2 * Math.SQRT2, 2 * Math.SQRT2, 2 * Math.SQRT2, 2 * Math.SQRT2]);
  // Generated pairwise: g0-g1 0.5, g1-g2 sqrt(12.5), g0-g2 sqrt(13.25), g2-g3 4.5, g1-g3 sqrt(64.25), g0-g3 sqrt(65).
  const r = kNearestRadii(GENERATED, 4, 2, 1);
  assert.deepEqual([...r], [0.5, 0.5, Math.sqrt(12.5), 4.5]);
  assert.throws(() => kNearestRadii(REAL, 4, 2, 4), /1 <= k < n points, got k 4 and 4 points/);
});

test('precision and recall count the points inside the balls of the other set', () => {
  // k = 1: (1, 1) and (1, 0.5) lie within 2 of a corner, (4.5, 0) is 2.5 from (2, 0), (9, 0) 7: precision 2/4.
  // Recall: (2, 0) is 2.5 <= sqrt(12.5) from (4.5, 0), (2, 2) is sqrt(10.25) <= sqrt(12.5) from it;
  // (0, 0) and (0, 2) are farther than every generated ball (1.12 and 1.41 from the 0.5-balls): 2/4.
  assert.deepEqual(precisionRecall(REAL, 4, GENERATED, 4, 2, 1), { k: 1, precision: 0.5, recall: 0.5 });
  // k = 3: corner balls of 2 sqrt 2 = 2.83 now hold (4.5, 0) too; generated balls of >= 4.5 hold every corner.
  assert.deepEqual(precisionRecall(REAL, 4, GENERATED, 4, 2, 3), { k: 3, precision: 0.75, recall: 1 });
});

test('a set against itself has precision and recall 1', () => {
  assert.deepEqual(precisionRecall(GENERATED, 4, GENERATED, 4, 2), { k: 3, precision: 1, recall: 1 });
});
