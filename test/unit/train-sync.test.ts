// The trainer's side of the collective: gradients, loss terms, BatchNorm statistics and the stop
// vote averaged across two real ring ranks; replicas whose weights differ are caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { listenForRing, type Collective } from '../../src/collective/ring.ts';
import type { PendingStatistics } from '../../src/models/batch-norm.ts';
import type { ModelBatch, VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import { accumulateGradients, computeGradients, disposeGradients, gradientWalk, type OnGradient } from '../../src/train/step.ts';
import {
  averageAcrossWorkers,
  checkReplicasAgree,
  OverlappedReducer,
  ReplicaDivergenceError,
  weightsChecksum,
  type StepCollective,
} from '../../src/train/sync.ts';
import { context, disposeBatch, fixedBatch, tinyConfig } from '../helpers/models-helpers.ts';

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
  assert.notEqual(await weightsChecksum(a), await weightsChecksum(c));
  const outcomes = await Promise.allSettled([checkReplicasAgree(differ[0]!, a, 100), checkReplicasAgree(differ[1]!, c, 100)]);
  for (const o of outcomes) {
    assert.equal(o.status, 'rejected');
    assert.ok((o as PromiseRejectedResult).reason instanceof ReplicaDivergenceError);
    assert.match(String((o as PromiseRejectedResult).reason.message), /replicas diverged at step 100/);
  }
  await Promise.all(differ.map((x) => x.close()));
  tf.dispose([...a, ...b, ...c]);
});

/** A Vanilla VAE small enough for the cpu backend: 1815 gradient floats, about 8 buckets of BUCKET. */
const SMALL = tinyConfig('vae', { image_size: 8, hidden_dims: [4, 8] });
/** Floats a bucket holds. */
const BUCKET = 256;

/** Rank r's two micro-batches: different images on every rank and micro-batch. */
function microBatches(rank: number): ModelBatch[] {
  return [0, 1].map((i) => {
    const batch = fixedBatch(2 + i, SMALL.image_size, 3);
    const shifted = tf.tidy(() => batch.images.mul(1 - 0.3 * rank).add(0.1 * i) as tf.Tensor4D);
    batch.images.dispose();
    return { ...batch, images: shifted };
  });
}

/**
 * Gradients of a 2-micro-batch step (weights 2/5 and 3/5) averaged over the ring, with or without
 * the reducer, and averageAcrossWorkers's wait for a slower peer; `lateMs` delays this rank after
 * its backward pass.
 */
async function averagedStep(
  collective: Collective,
  model: VaeModel,
  batches: ModelBatch[],
  reducer: OverlappedReducer | undefined,
  onWalkEnd: () => void = () => {},
  lateMs = 0,
): Promise<{ gradients: Record<string, Float32Array>; waitMs: number }> {
  const grads: Record<string, tf.NamedTensorMap> = {};
  const first = computeGradients(model, batches[0]!, context(3));
  accumulateGradients(grads, first.groups, 2 / 5);
  disposeGradients(first);
  const walk = (onGradient: OnGradient) => gradientWalk(model, batches[1]!, context(3), onGradient);
  const last = reducer ? await reducer.run(walk, grads, 3 / 5) : computeGradients(model, batches[1]!, context(3));
  onWalkEnd();
  if (!reducer) accumulateGradients(grads, last.groups, 3 / 5);
  disposeGradients(last);
  if (lateMs > 0) await new Promise((resolve) => setTimeout(resolve, lateMs));
  const { waitMs } = await averageAcrossWorkers(collective, grads, {}, [], false, reducer);
  const gradients = Object.fromEntries(Object.entries(grads['model']!).map(([name, g]) => [name, g.dataSync() as Float32Array]));
  tf.dispose(grads as tf.TensorContainer);
  return { gradients, waitMs };
}

test('overlapped: buckets are all-reduced while the backward pass runs, and every gradient equals the all-reduce after it, bit for bit', async () => {
  const collectives = await ring();
  const before = tf.memory().numTensors;
  try {
    const results = await Promise.all(
      collectives.map(async (c, rank) => {
        const model = createModel(SMALL, 4);
        const batches = microBatches(rank);
        const { gradients: after } = await averagedStep(c, model, batches, undefined);
        let walking = true;
        const calls: boolean[] = [];
        const watched: Collective = Object.assign(Object.create(c) as Collective, {
          allReduceMean: (buffers: Float32Array[]) => {
            calls.push(walking);
            return c.allReduceMean(buffers);
          },
        });
        const { gradients: during } = await averagedStep(
          watched,
          model,
          batches,
          new OverlappedReducer(watched, BUCKET),
          () => (walking = false),
        );
        tf.dispose(batches.flatMap((b) => [b.images, b.labels!]));
        model.dispose();
        return { after, during, calls };
      }),
    );
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    for (const { after, during, calls } of results) {
      assert.deepEqual(Object.keys(during).sort(), Object.keys(after).sort());
      for (const [name, values] of Object.entries(after)) assert.deepEqual(during[name], values, name);
      const bucketsWhileWalking = calls.filter((walking) => walking).length;
      assert.ok(bucketsWhileWalking >= 2, `buckets sent while walking: ${bucketsWhileWalking} of ${calls.length} all-reduces`);
    }
    assert.notDeepEqual(
      Object.values(results[0]!.after)[0],
      Object.values(computeOnce(0))[0],
      'the average differs from one rank alone: the ranks did contribute',
    );
  } finally {
    await Promise.all(collectives.map((c) => c.close()));
  }
});

test("overlapped: a peer's lag after the backward pass is reported as waiting, and the walk's own communication work is counted", async () => {
  const collectives = await ring();
  const lateMs = 300;
  try {
    const results = await Promise.all(
      collectives.map(async (c, rank) => {
        const model = createModel(SMALL, 4);
        const batches = microBatches(rank);
        const reducer = new OverlappedReducer(c, BUCKET);
        // Rank 1 sends to rank 0 (the ring runs towards lower ranks): rank 0 waits for it.
        const { waitMs } = await averagedStep(c, model, batches, reducer, () => {}, rank === 1 ? lateMs : 0);
        tf.dispose(batches.flatMap((b) => [b.images, b.labels!]));
        model.dispose();
        return { waitMs, commWorkMs: reducer.commWorkMs, pausedMs: reducer.pausedMs };
      }),
    );
    assert.ok(results[0]!.waitMs >= lateMs - 30, `rank 0 waited ${results[0]!.waitMs} ms for a rank ${lateMs} ms late`);
    assert.ok(results[1]!.waitMs < lateMs / 3, `the late rank itself waited ${results[1]!.waitMs} ms`);
    for (const { commWorkMs } of results) assert.ok(commWorkMs > 0, 'filling and sending buckets takes time');
  } finally {
    await Promise.all(collectives.map((c) => c.close()));
  }
});

/** Rank r's own weighted gradients of the same step, not averaged. */
function computeOnce(rank: number): Record<string, Float32Array> {
  const model = createModel(SMALL, 4);
  const batches = microBatches(rank);
  const grads: Record<string, tf.NamedTensorMap> = {};
  batches.forEach((batch, i) => {
    const step = computeGradients(model, batch, context(3));
    accumulateGradients(grads, step.groups, i === 0 ? 2 / 5 : 3 / 5);
    disposeGradients(step);
  });
  const out = Object.fromEntries(Object.entries(grads['model']!).map(([name, g]) => [name, g.dataSync() as Float32Array]));
  tf.dispose(grads as tf.TensorContainer);
  tf.dispose(batches.flatMap((b) => [b.images, b.labels!]));
  model.dispose();
  return out;
}

test('overlapped: a failed bucket all-reduce stops the backward walk with that error and frees what it held', async () => {
  const model = createModel(SMALL, 4);
  const batch = fixedBatch(2, SMALL.image_size, 3);
  let calls = 0;
  const failing: StepCollective = {
    rank: 0,
    worldSize: 2,
    progressesInBackground: false,
    allReduceMean: () => (++calls === 2 ? Promise.reject(new Error('rank 1 closed the connection')) : new Promise((r) => setImmediate(r))),
    broadcast: () => Promise.resolve(),
    stats: () => ({ bytesReduced: 0, lastAllReduceMs: 0, lastAllReduceWaitMs: 0, lastAllReduceStartedAt: 0, busyMs: 0 }),
  };
  const before = tf.memory().numTensors;
  const reducer = new OverlappedReducer(failing, BUCKET);
  await assert.rejects(
    reducer.run((onGradient) => gradientWalk(model, batch, context(1), onGradient), {}, 1),
    /rank 1 closed the connection/,
  );
  assert.equal(tf.memory().numTensors, before, 'the walk freed its gradients and the tape');
  await assert.rejects(reducer.finish(), /rank 1 closed the connection/);
  disposeBatch(batch);
  model.dispose();
});
