// The training step's parts: Adam against the hand-computed update, clipping by global norm against
// Adam written out in float64, the progress lines, gradient and statistics sync between two in-
// process ranks (overlapped with the backward pass), and the memory footprint that picks the micro-
// batch. One process for all, as a process costs about a second to start: each describe block below
// sets the TF.js backend it computes on (cpu) itself.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { Adam } from '../../src/optim/adam.ts';
import { clipByGlobalNorm } from '../../src/optim/clip.ts';
import {
  accumulateGradients,
  computeGradients,
  disposeGradients,
  gradientWalk,
  GroupOptimizer,
  type OnGradient,
} from '../../src/train/step.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createProgress, type StepReport } from '../../src/run/progress.ts';
import { type Collective, listenForRing } from '../../src/collective/ring.ts';
import type { PendingStatistics } from '../../src/models/batch-norm.ts';
import type { ModelBatch, VaeModel } from '../../src/models/base.ts';
import { createModel } from '../../src/models/index.ts';
import {
  averageAcrossWorkers,
  checkReplicasAgree,
  OverlappedReducer,
  ReplicaDivergenceError,
  type StepCollective,
  weightsChecksum,
} from '../../src/train/sync.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import type { AdapterDescription, BackendName } from '../../src/backend/index.ts';
import { fakeAdapter } from '../helpers/adapters.ts';
import { trainingFootprint } from '../../src/models/footprint.ts';
import {
  activationBytesPerImage,
  COPIES_PER_ACTIVATION,
  GPU_BYTES_PER_ELEMENT,
  GPU_BYTES_PER_PARAMETER,
  gpuFootprint,
  MicroBatchError,
  resolveMicroBatch,
} from '../../src/train/micro-batch.ts';
import { context, disposeBatch, fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';

describe('train-adam: one Adam step by hand, weight decay, saved state', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  test('one Adam step matches the hand-computed update', () => {
    // theta 1, g 0.5, lr 0.1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
    // update = 0.1 * 0.5 / (0.5 + eps) = 0.1 -> theta 0.9.
    const theta = tf.variable(tf.scalar(1));
    const adam = new Adam({ lr: 0.1 });
    const g = tf.scalar(0.5);
    adam.applyGradients({ theta }, { theta: g });
    assert.ok(Math.abs(theta.dataSync()[0]! - 0.9) < 1e-6);
    // Second step, same gradient: m = 0.095, v = 0.00049975, m_hat = 0.095/0.19 = 0.5,
    // v_hat = 0.00049975/0.001999 = 0.25 -> the update is again 0.1.
    adam.applyGradients({ theta }, { theta: g });
    assert.ok(Math.abs(theta.dataSync()[0]! - 0.8) < 1e-6);
    tf.dispose([theta, g]);
    adam.dispose();
  });

  test('weight decay adds wd * theta to the gradient (PyTorch Adam semantics)', () => {
    const a = tf.variable(tf.tensor1d([2, -3]));
    const b = tf.variable(tf.tensor1d([2, -3]));
    const withDecay = new Adam({ lr: 0.01, weightDecay: 0.1 });
    const plain = new Adam({ lr: 0.01 });
    const g = tf.tensor1d([0.3, 0.4]);
    const gPlusDecay = tf.tensor1d([0.3 + 0.2, 0.4 - 0.3]);
    withDecay.applyGradients({ w: a }, { w: g });
    plain.applyGradients({ w: b }, { w: gPlusDecay });
    assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
    tf.dispose([a, b, g, gPlusDecay]);
    withDecay.dispose();
    plain.dispose();
  });

  test('state saved and restored into a fresh optimizer continues bit for bit', () => {
    const grads = [0.3, -0.2, 0.7, 0.1, -0.5].map((v) => tf.tensor1d([v, v * 2, -v]));
    const run = (restoreAfter: number | undefined): Float32Array => {
      const w = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3])));
      let opt = new Adam({ lr: 0.05 });
      grads.forEach((g, i) => {
        if (i === restoreAfter) {
          const { step, tensors } = opt.state();
          const copies = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.clone()]));
          opt.dispose();
          opt = new Adam({ lr: 0.05 });
          opt.restore(step, copies);
          tf.dispose(copies);
        }
        opt.applyGradients({ w }, { w: g });
      });
      const out = w.dataSync() as Float32Array;
      w.dispose();
      opt.dispose();
      return out;
    };
    const before = tf.memory().numTensors;
    assert.deepEqual(run(undefined), run(2));
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked by apply/state/restore/dispose');
    tf.dispose(grads);
  });
});

describe('optim-clip: gradient clipping by global norm', () => {
  // Gradient clipping by global norm (train.grad_clip_norm): hand-computed scaling, and its effect on
  // Adam's trajectory checked against Adam written out in float64 here.

  before(async () => {
    await tf.setBackend('cpu');
  });

  test('gradients over the norm are scaled together to it; under it they are unchanged', () => {
    // |(3, 0, 4)| = 5: clipped to 1, every entry is divided by 5 (+1e-6).
    const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[4]]) };
    const clipped = clipByGlobalNorm(grads, 1);
    assert.deepEqual(Object.keys(clipped).sort(), ['a', 'b']);
    const a = Array.from(clipped.a!.dataSync());
    const b = Array.from(clipped.b!.dataSync());
    for (const [got, want] of [...a.map((x, i) => [x, [0.6, 0][i]!]), [b[0]!, 0.8]])
      assert.ok(Math.abs(got! - want!) < 1e-6, `${got} vs ${want}`);
    assert.deepEqual(clipped.b!.shape, [1, 1]);
    const loose = clipByGlobalNorm(grads, 10);
    assert.deepEqual(Array.from(loose.a!.dataSync()), [3, 0]);
    assert.deepEqual(Array.from(loose.b!.dataSync()), [4]);
    const before = tf.memory().numTensors;
    tf.dispose([clipped, loose]);
    assert.equal(tf.memory().numTensors, before - 4, 'only the returned tensors remain');
    tf.dispose(grads);
  });

  /** Adam in float64 (PyTorch's formula), for the expected trajectory. */
  function adam64(theta: number, grads: number[], lr: number): number {
    let m = 0;
    let v = 0;
    grads.forEach((g, i) => {
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * g * g;
      const mHat = m / (1 - 0.9 ** (i + 1));
      const vHat = v / (1 - 0.999 ** (i + 1));
      theta -= (lr * mHat) / (Math.sqrt(vHat) + 1e-8);
    });
    return theta;
  }

  test('a param group with grad_clip_norm 1 feeds Adam the clipped gradients (10 -> 1), one without feeds them as they are', () => {
    // Adam's first step ignores the gradient's scale; the second does not, so the two paths part.
    const steps = [10, 0.1];
    const run = (clipNorm: number): number => {
      const w = tf.variable(tf.scalar(1));
      const optimizer = new GroupOptimizer(new Adam({ lr: 0.1 }), { w }, 0.1, clipNorm);
      for (const g of steps) {
        const grad = tf.scalar(g);
        optimizer.applyGradients({ w: grad });
        grad.dispose();
      }
      const out = w.dataSync()[0]!;
      w.dispose();
      optimizer.dispose();
      return out;
    };
    const clipped = run(1);
    const plain = run(0);
    assert.ok(Math.abs(clipped - adam64(1, [10 / (10 + 1e-6), 0.1], 0.1)) < 1e-5, `clipped ${clipped}`);
    assert.ok(Math.abs(plain - adam64(1, steps, 0.1)) < 1e-5, `plain ${plain}`);
    assert.ok(Math.abs(clipped - plain) > 1e-3, `the clip changed nothing: ${clipped} vs ${plain}`);
  });

  test('train.grad_clip_norm defaults to 0 (off) and refuses a negative value, naming the key', () => {
    assert.equal(loadConfig().train.grad_clip_norm, 0);
    assert.equal(loadConfig({ sets: ['train.grad_clip_norm=1.5'] }).train.grad_clip_norm, 1.5);
    assert.throws(() => loadConfig({ sets: ['train.grad_clip_norm=-1'] }), /train\.grad_clip_norm/);
  });
});

describe('train-progress: plain, terminal and json progress output', () => {
  /** A stand-in for process.stderr that records what is written. */
  function sink(isTTY: boolean, columns?: number): NodeJS.WriteStream & { text: string } {
    const s = {
      text: '',
      isTTY,
      columns,
      write(chunk: string) {
        s.text += chunk;
        return true;
      },
    };
    return s as unknown as NodeJS.WriteStream & { text: string };
  }

  const report = (step: number): StepReport => ({
    epoch: 0,
    epochs: 2,
    stepInEpoch: step,
    stepsPerEpoch: 10,
    step,
    totalSteps: 20,
    terms: { loss: 0.5, kld: 12345.678 },
    imagesPerSecond: 41.25,
    lr: 0.005,
  });

  test('plain output: one line every N steps and at the end of an epoch, with ETA, throughput and terms', () => {
    const out = sink(false);
    const progress = createProgress('auto', { everySteps: 5, stream: out });
    for (let s = 0; s < 10; s++) progress.step(report(s));
    const lines = out.text.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => /step (\d+)\/10/.exec(l)?.[1]),
      ['1', '6', '10'],
    );
    assert.match(lines[0]!, /^epoch 1\/2 step 1\/10 \| ETA \d+m\d\ds \| 41\.3 img\/s \| lr 5\.00e-3 \| loss 0\.5000 kld 1\.235e\+4$/);
  });

  test('a terminal gets one redrawn bar, cut to its width, and a newline before other messages', () => {
    const out = sink(true, 60);
    const progress = createProgress('auto', { everySteps: 5, stream: out });
    progress.step(report(0));
    progress.step(report(1));
    progress.info('checkpoint saved');
    const frames = out.text.split('\r').filter(Boolean);
    assert.equal(frames.length, 2);
    for (const f of frames) assert.ok(f.replace('\x1b[K', '').split('\n')[0]!.length <= 59, f);
    assert.match(out.text, /\ncheckpoint saved\n$/);
  });

  test('json output: parseable objects with the step fields, counted from 1 as the plain line counts them', () => {
    const out = sink(false);
    const progress = createProgress('json', { everySteps: 1, stream: out });
    progress.info('hello');
    progress.step(report(3));
    const [info, step] = out.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(info!.message, 'hello');
    assert.equal(step!.event, 'step');
    // report(3) is the fourth step of the first epoch: the plain line says "epoch 1/2 step 4/10".
    assert.deepEqual([step!.epoch, step!.epochs, step!.stepInEpoch, step!.stepsPerEpoch, step!.step], [1, 2, 4, 10, 4]);
    const plain = sink(false);
    createProgress('plain', { everySteps: 1, stream: plain }).step(report(3));
    assert.match(plain.text, /^epoch 1\/2 step 4\/10 /);
  });
});

describe('train-sync: gradients and statistics averaged between two ranks', () => {
  // The trainer's side of the collective: gradients, loss terms, BatchNorm statistics and the stop
  // vote averaged across two real ring ranks; replicas whose weights differ are caught.

  before(async () => {
    await tf.setBackend('cpu');
  });

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
      allReduceMean: () =>
        ++calls === 2 ? Promise.reject(new Error('rank 1 closed the connection')) : new Promise((r) => setImmediate(r)),
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
});

describe('train-memory: the training footprint and the micro-batch it allows', () => {
  // How many images one pass holds (train.micro_batch): the CPU budget, and on WebGPU the model's own
  // layer shapes against the adapter's limits and the budget, with numbers counted by hand. train()
  // under a small budget on webgpu is in webgpu-kernels.test.ts, whose process has the shaders.

  const MiB = 2 ** 20;

  test('activation bytes per image follow the conv stacks (hand count for a 2-layer 32x32 model)', () => {
    const cfg = loadConfig({ sets: ['model.image_size=32', 'model.hidden_dims=[8, 16]', 'model.in_channels=3'] });
    // input 32*32*3 + encoder (16*16*8 + 8*8*16) + decoder mirror (same) + full-size 32*32*8 + output 32*32*3
    const elements = 3072 + 2 * (2048 + 1024) + 8192 + 3072;
    assert.equal(activationBytesPerImage(cfg), elements * 4 * COPIES_PER_ACTIVATION);
  });

  test("micro_batch 'auto' fits the budget: 4 at 256x256 in 3000 MB, the whole rank batch at 64x64; numbers are capped by the rank batch", () => {
    const at256 = loadConfig({ file: 'configs/vaegan_gleason256.yaml' });
    assert.equal(resolveMicroBatch(at256, 32, { name: 'wasm' }), 4);
    assert.ok(resolveMicroBatch(at256, 32, { name: 'wasm' }) * activationBytesPerImage(at256) <= 3000 * 2 ** 20);
    // wasm cannot use more than its 4 GB address space, whatever the budget says.
    const huge = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['train.memory_budget_mb=64000'] });
    assert.equal(resolveMicroBatch(huge, 32, { name: 'wasm' }), Math.floor((3500 * 2 ** 20) / activationBytesPerImage(huge)));
    assert.equal(resolveMicroBatch(huge, 32, { name: 'tensorflow' }), 32);
    const at64 = loadConfig({ sets: ['train.micro_batch=auto'] });
    assert.equal(resolveMicroBatch(at64, 32, { name: 'wasm' }), 32);
    assert.equal(resolveMicroBatch(loadConfig({ sets: ['train.micro_batch=48'] }), 32, { name: 'wasm' }), 32);
  });

  test("the default is 'auto', and on every CPU backend it keeps the default job and every shipped 64x64 config at 64 images a pass", () => {
    assert.equal(DEFAULT_CONFIG.train.micro_batch, 'auto');
    const cpu: BackendName[] = ['wasm', 'native', 'tensorflow', 'cpu'];
    for (const name of cpu) assert.equal(resolveMicroBatch(loadConfig(), 64, { name }), 64, name);
    for (const file of readdirSync('configs').filter((f) => f.endsWith('.yaml'))) {
      const cfg = loadConfig({ file: join('configs', file) });
      if (cfg.model.image_size !== 64) continue;
      // What these configs ran with before 'auto' became the default: their own number, else 64.
      const before = Math.min(cfg.train.micro_batch === 'auto' ? 64 : cfg.train.micro_batch, cfg.train.batch_size);
      for (const name of cpu) assert.equal(resolveMicroBatch(cfg, cfg.train.batch_size, { name }), before, `${file} on ${name}`);
    }
  });

  test('the footprint of src/models matches built models: parameters exactly, every conv block a layer output, the largest tensor', async () => {
    await tf.setBackend('cpu');
    for (const name of MODEL_NAMES) {
      for (const overrides of [{}, { image_size: 16, hidden_dims: [8] }, { hidden_dims: [4, 8, 16], in_channels: 1 as const }]) {
        const config = tinyConfig(name, overrides);
        const model = createModel(config, 1, LABEL_WIDTH);
        const footprint = trainingFootprint(config, LABEL_WIDTH);
        const what = `${name} ${JSON.stringify(overrides)}`;
        assert.equal(footprint.parameters, model.paramCount(), what);
        for (const [network, net] of Object.entries(model.networks)) {
          const shapes = new Set(
            net.layers.flatMap((l) => {
              const s = l.outputShape as (number | null)[];
              return s.length === 4 ? [s.slice(1).join('x')] : [];
            }),
          );
          const mine = footprint.activations.filter((a) => a.network === network);
          assert.ok(mine.length > 0, `${what}: no activations of ${network}`);
          for (const a of mine)
            assert.ok(shapes.has(`${a.height}x${a.width}x${a.channels}`), `${what}: ${network} ${a.layer} is no layer's output`);
          const largest = Math.max(...[...shapes].map((s) => s.split('x').reduce((p, d) => p * Number(d), 1)));
          assert.equal(Math.max(...mine.map((a) => a.height * a.width * a.channels)), largest, `${what}: ${network}'s largest layer`);
        }
        model.dispose();
      }
    }
    // The 256x256 VAE-GAN: the parameter count bench:step reports for it (docs/performance.jsonl).
    assert.equal(trainingFootprint(loadConfig({ file: 'configs/vaegan_gleason256.yaml' }).model).parameters, 17368164);
  });

  /** A hardware adapter with these binding and buffer limits (bytes). */
  const limits = (maxStorageBufferBindingSize: number, maxBufferSize = 2 ** 32): AdapterDescription =>
    fakeAdapter({ name: 'Test GPU', limits: { maxBufferSize, maxStorageBufferBindingSize } });

  /** configs/smoke.yaml's model: Vanilla VAE, 32x32x3, hidden_dims [8, 16], latent 8. */
  function smoke(sets: string[] = []): ReturnType<typeof loadConfig> {
    return loadConfig({ file: 'configs/smoke.yaml', sets: ['train.micro_batch=auto', ...sets] });
  }

  test('webgpu, by hand: the footprint of the smoke model, and the micro-batch a small binding and a small budget give', () => {
    // Elements per image, forward tensors (conv blocks keep conv, bias add, BatchNorm, LeakyReLU: 4):
    //   encoder: image 32*32*3 x1, conv0 16*16*8 x4, conv1 8*8*16 x4          = 3072 + 8192 + 4096
    //   decoder: dense 8*8*16 x2, deconv0 16*16*8 x4, deconv1 32*32*8 x4,
    //            output 32*32*3 x3 (conv, bias, tanh)                           = 2048 + 8192 + 32768 + 9216
    //   loss:    32*32*3 x4                                                      = 12288
    const elements = 3072 + 8192 + 4096 + 2048 + 8192 + 32768 + 9216 + 12288;
    assert.equal(elements, 79872);
    // Parameters: encoder convs (9*3*8+8 + 2*8) + (9*8*16+16 + 2*16), heads 2*(1024*8+8);
    // decoder dense 8*1024+1024, deconvs (9*16*8+8 + 2*8) + (9*8*8+8 + 2*8), output conv 9*8*3+3.
    const parameters = 240 + 1200 + 16400 + 9216 + 1176 + 600 + 219;
    assert.equal(parameters, 29051);
    const f = gpuFootprint(smoke());
    assert.equal(f.bytesPerImage, elements * GPU_BYTES_PER_ELEMENT);
    assert.equal(f.bytesPerImage, 958464);
    assert.equal(f.fixedBytes, parameters * GPU_BYTES_PER_PARAMETER);
    assert.equal(f.fixedBytes, 697224);
    // The largest tensor: the decoder's full-size block, 32*32*8 float32 = 32768 bytes an image.
    assert.equal(`${f.largest.network} ${f.largest.layer}`, 'decoder deconv1');
    assert.equal(f.largestBytesPerImage, 32768);

    // A 100000-byte binding holds 3 such tensors (98304 bytes). 8 MB holds 3 + the last pass's 1
    // image (16 = 5 x 3 + 1): 697224 + 4 x 958464 = 4531080 <= 8388608.
    assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=8']), 16, { name: 'webgpu', adapter: limits(100_000) }), 3);
    // maxBufferSize below the binding limit is the one that binds.
    assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=8']), 16, { name: 'webgpu', adapter: limits(2 ** 30, 70_000) }), 2);
    // A large binding and 5 MB (5242880 bytes): 5 images a pass need 697224 + 5 x 958464 = 5489544,
    // too many; 4 (4 passes of 4) need 4531080.
    assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 16, { name: 'webgpu', adapter: limits(2 ** 30) }), 4);
    // Of 10 images: 5 (2 x 5) does not fit; 3 passes of 4 leave a pass of 2, whose buffers TF.js keeps
    // beside those of 4: 697224 + (4 + 2) x 958464 > 5242880; 4 passes of 3 (3+3+3+1) fit.
    assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 10, { name: 'webgpu', adapter: limits(2 ** 30) }), 3);
    // A CPU backend with the same config knows nothing of bindings.
    assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 16, { name: 'wasm' }), 1);
  });

  test('webgpu: the 256x256 VAE-GAN fits within H100-like limits, and by the binding alone with a large budget', () => {
    // Dawn on an NVIDIA GPU (Vulkan): bindings of 2 GiB - 4, buffers of 4 GiB.
    const h100 = limits(2 ** 31 - 4, 2 ** 32);
    const at256 = loadConfig({ file: 'configs/vaegan_gleason256.yaml' });
    const f = gpuFootprint(at256);
    // The decoder's full-size block, 256*256*32 float32, for posterior and prior latents: 16 MiB an image.
    assert.equal(`${f.largest.network} ${f.largest.layer} ${f.largest.passes}`, 'decoder deconv4 2');
    assert.equal(f.largestBytesPerImage, 2 * 256 * 256 * 32 * 4);
    // 3000 MB (the default budget): 4 images a pass, 16 passes for 64 images.
    const micro = resolveMicroBatch(at256, 64, { name: 'webgpu', adapter: h100 });
    assert.equal(micro, 4);
    assert.ok(f.fixedBytes + micro * f.bytesPerImage <= 3000 * MiB);
    // 5 a pass (12 x 5 + 4) holds the buffers of 5 and of 4 images.
    assert.ok(f.fixedBytes + (5 + 4) * f.bytesPerImage > 3000 * MiB);
    // 60000 MB: the whole rank batch of 64; WebGPU's default 128 MiB binding holds 8 such tensors.
    const big = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['train.memory_budget_mb=60000'] });
    assert.equal(resolveMicroBatch(big, 64, { name: 'webgpu', adapter: h100 }), 64);
    assert.equal(resolveMicroBatch(big, 64, { name: 'webgpu', adapter: limits(128 * MiB) }), 8);
    // 256 images: 127 tensors fit a binding, about 117 images the budget; 2 passes of 128 and 3 of
    // 86 (+84) do not fit, 4 passes of 64 do.
    assert.equal(resolveMicroBatch(big, 256, { name: 'webgpu', adapter: h100 }), 64);
  });

  test('webgpu: a model that cannot fit one image, or a number that cannot be bound, is refused in one line naming the limit, the size and what to do', () => {
    const oneLine = (pattern: RegExp) => (e: unknown) => {
      assert.ok(e instanceof MicroBatchError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, pattern);
      return true;
    };
    // A 1 MB budget cannot hold the smoke model's 0.66 MB of weights and state plus one 0.91 MB image.
    assert.throws(
      () => resolveMicroBatch(smoke(['train.memory_budget_mb=1']), 16, { name: 'webgpu', adapter: limits(2 ** 30) }),
      oneLine(
        /^train\.micro_batch auto: one 32x32 image of vae needs about 1\.6 MB of GPU memory \(0\.91 MB of activations, 0\.66 MB of weights and optimizer state\), more than train\.memory_budget_mb \(1 MB\): raise train\.memory_budget_mb .*model\.image_size or model\.hidden_dims, or a GPU with more memory$/,
      ),
    );
    // A binding smaller than one image's largest tensor.
    assert.throws(
      () => resolveMicroBatch(smoke(), 16, { name: 'webgpu', adapter: limits(30_000) }),
      oneLine(
        /^train\.micro_batch auto: one image needs a 0\.031 MB tensor \(decoder deconv1: 1 x 32x32x8 float32 at 32x32\), more than Test GPU's largest storage buffer \(0\.029 MB, WebGPU limit maxStorageBufferBindingSize\): use a smaller model\.image_size or model\.hidden_dims, or a GPU with larger limits$/,
      ),
    );
    // An explicit number whose tensors WebGPU could not bind (it would skip those kernels).
    assert.throws(
      () => resolveMicroBatch(smoke(['train.micro_batch=8']), 16, { name: 'webgpu', adapter: limits(100_000) }),
      oneLine(
        /^train\.micro_batch 8 needs a 0\.25 MB tensor \(decoder deconv1: 8 x 32x32x8 float32 at 32x32\), .*: use train\.micro_batch: auto or at most 3$/,
      ),
    );
    assert.equal(resolveMicroBatch(smoke(['train.micro_batch=3']), 16, { name: 'webgpu', adapter: limits(100_000) }), 3);
    // 1024x1024 VAE-GAN: one image's decoder output block is 2 x 1024*1024*32 float32, 256 MiB.
    const at1024 = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['model.image_size=1024'] });
    assert.throws(
      () => resolveMicroBatch(at1024, 64, { name: 'webgpu', adapter: limits(128 * MiB) }),
      oneLine(
        /one image needs a 256 MB tensor \(decoder deconv4: 2 x 1024x1024x32 float32 at 1024x1024\), more than Test GPU's largest storage buffer \(128 MB/,
      ),
    );
  });
});
