// The trainer's side of the collective: gradients, loss terms, BatchNorm statistics and the stop
// vote averaged across two real ring ranks; replicas whose weights differ are caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { listenForRing, type Collective } from '../src/distributed/collective/ring.ts';
import type { PendingStatistics } from '../src/models/batch-norm.ts';
import { averageAcrossWorkers, checkReplicasAgree, ReplicaDivergenceError, weightsChecksum } from '../src/train/sync.ts';

await tf.setBackend('cpu');

async function ring(): Promise<Collective[]> {
  const listeners = await Promise.all([0, 1].map((rank) => listenForRing({ rank, worldSize: 2, log: () => undefined })));
  const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
  return Promise.all(listeners.map((l) => l.connect(peers)));
}

/** Pending BatchNorm statistics of one layer as the trainer hands them over. */
function stats(count: number, sum: number[], squares: number[]): PendingStatistics {
  return { count, shiftedSum: tf.tensor1d(sum), shiftedSquares: tf.tensor1d(squares) };
}

function values(s: PendingStatistics): { count: number; sum: number[]; squares: number[] } {
  return { count: s.count, sum: Array.from(s.shiftedSum.dataSync()), squares: Array.from(s.shiftedSquares.dataSync()) };
}

test('a later step reuses the all-reduce buffer without changing what the earlier step produced', async () => {
  const collectives = await ring();
  try {
    const results = await Promise.all(
      collectives.map(async (c, rank) => {
        const mine = [stats(2, [rank], [10 * rank])];
        const first = { model: { w: tf.tensor1d([rank, 2 * rank, 4]) } };
        const pooled = await averageAcrossWorkers(c, first, {}, mine, false);
        const pooledAfterFirst = values(pooled.statistics[0]!);
        // Five floats again (3 gradients + 2 statistics before): the same buffer is used.
        const second = { model: { w: tf.tensor1d([100 + rank, 200, 300, 400, 500]) } };
        await averageAcrossWorkers(c, second, {}, [], false);
        const out = {
          first: Array.from(first.model.w.dataSync()),
          second: Array.from(second.model.w.dataSync()),
          pooled: values(pooled.statistics[0]!),
          pooledAfterFirst,
        };
        tf.dispose([
          first.model.w,
          second.model.w,
          mine[0]!.shiftedSum,
          mine[0]!.shiftedSquares,
          pooled.statistics[0]!.shiftedSum,
          pooled.statistics[0]!.shiftedSquares,
        ]);
        return out;
      }),
    );
    for (const r of results) {
      assert.deepEqual(r.first, [0.5, 1, 4]);
      assert.deepEqual(r.second, [100.5, 200, 300, 400, 500]);
      assert.deepEqual(r.pooledAfterFirst, { count: 4, sum: [1], squares: [10] });
      assert.deepEqual(r.pooled, r.pooledAfterFirst, "the second step must not write into the first step's pooled statistics");
    }
  } finally {
    await Promise.all(collectives.map((c) => c.close()));
  }
});

test('two ranks end with the mean of gradients and terms, the sum of BatchNorm statistics, and agree to stop if either asks', async () => {
  const collectives = await ring();
  const inputs = [
    { g: [1, 2, 3], b: [10], loss: 0.5, count: 3, sum: [0, 4], squares: [1, 2], stop: false },
    { g: [3, 6, 9], b: [20], loss: 1.5, count: 5, sum: [2, 8], squares: [3, 5], stop: true },
  ];
  const results = await Promise.all(
    collectives.map(async (c, rank) => {
      const x = inputs[rank]!;
      const grads = { model: { w: tf.tensor1d(x.g), b: tf.tensor1d(x.b) } };
      const terms = { loss: x.loss };
      const mine = [stats(x.count, x.sum, x.squares)];
      const { bytes, stop, statistics } = await averageAcrossWorkers(c, grads, terms, mine, x.stop);
      const out = {
        w: Array.from(grads.model.w.dataSync()),
        b: Array.from(grads.model.b.dataSync()),
        loss: terms.loss,
        pooled: values(statistics[0]!),
        bytes,
        stop,
      };
      tf.dispose([
        grads.model.w,
        grads.model.b,
        mine[0]!.shiftedSum,
        mine[0]!.shiftedSquares,
        statistics[0]!.shiftedSum,
        statistics[0]!.shiftedSquares,
      ]);
      return out;
    }),
  );
  for (const r of results) {
    assert.deepEqual(r.w, [2, 4, 6]);
    assert.deepEqual(r.b, [15]);
    assert.equal(r.loss, 1);
    assert.deepEqual(r.pooled, { count: 8, sum: [2, 12], squares: [4, 7] });
    assert.equal(r.stop, true, 'one rank asked to stop: both stop after the same step');
    // 4 gradient floats, 4 statistics floats; 1 term, 1 count and 1 vote.
    assert.equal(r.bytes, (4 + 4 + 3) * 4);
  }
  await Promise.all(collectives.map((c) => c.close()));
});

test('replicas with equal weights pass the checksum; one differing bit stops every rank', async () => {
  const same = await ring();
  const make = (values: number[]): tf.Variable[] => [tf.variable(tf.tensor1d(values), false)];
  const a = make([1, 2, 3]);
  const b = make([1, 2, 3]);
  await Promise.all([checkReplicasAgree(same[0]!, a, 50), checkReplicasAgree(same[1]!, b, 50)]);
  await Promise.all(same.map((c) => c.close()));

  const differ = await ring();
  const c = make([1, 2, 3 + 2 ** -20]);
  assert.notEqual(weightsChecksum(a), weightsChecksum(c));
  const outcomes = await Promise.allSettled([checkReplicasAgree(differ[0]!, a, 100), checkReplicasAgree(differ[1]!, c, 100)]);
  for (const o of outcomes) {
    assert.equal(o.status, 'rejected');
    assert.ok((o as PromiseRejectedResult).reason instanceof ReplicaDivergenceError);
    assert.match(String((o as PromiseRejectedResult).reason.message), /replicas diverged at step 100/);
  }
  await Promise.all(differ.map((x) => x.close()));
  tf.dispose([...a, ...b, ...c]);
});
