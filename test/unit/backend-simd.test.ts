// The SIMD kernels of src/backend/simd (LeakyRelu, its gradient, the per-channel ops batch norm is
// built from, the Adam update) on wasm, against float64 sums computed here and against the cpu backend; and the
// batch-norm and LeakyReLU layers built on them, against TF.js's stock layers on cpu.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { adamUpdate } from '../../src/backend/adam-update.ts';
import { channelAffine, channelSquaredDeviationSum, channelSum, channelSumAndDot, leakyReluGrad } from '../../src/backend/channel-ops.ts';
import { SimdKernelError } from '../../src/backend/simd/module.ts';
import { BatchNorm } from '../../src/models/batch-norm.ts';
import { LeakyRelu } from '../../src/models/leaky-relu.ts';
import { mulberry32 } from '../../src/util/rng.ts';

function randomValues(n: number, seed: number, offset = 0, spread = 2): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => offset + (next() - 0.5) * spread);
}

/** Per-channel float64 sums of f(row, channel) over the rows of a [rows, channels] layout. */
function channelSums(rows: number, channels: number, f: (i: number, c: number) => number): number[] {
  const sums = new Array<number>(channels).fill(0);
  for (let i = 0; i < rows; i++) for (let c = 0; c < channels; c++) sums[c] += f(i, c);
  return sums;
}

function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i]));
    assert.ok(err <= tolerance, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (relative error ${err})`);
  }
}

/** Names of the kernels `f` runs (tf.profile lists nested kernels too). */
async function kernelsRun(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(() => f());
  tf.dispose(info.result);
  return info.kernelNames;
}

/** Runs f and checks it leaves exactly its outputs as new tensors and backend buffers. */
function withoutLeaks<T extends tf.Tensor | tf.Tensor[]>(f: () => T): T {
  const tensors = tf.memory().numTensors;
  const buffers = tf.backend().numDataIds();
  const out = f();
  const count = Array.isArray(out) ? out.length : 1;
  assert.equal(tf.memory().numTensors, tensors + count, 'tensors left behind');
  assert.equal(tf.backend().numDataIds(), buffers + count, 'backend buffers left behind');
  return out;
}

before(async () => {
  await initBackend('wasm');
});

describe('LeakyRelu and its gradient on wasm (SIMD)', () => {
  // 4099 floats: whole vectors and a 3-float tail; 0 and -0 and tiny values at the start.
  const n = 4099;
  const values = randomValues(n, 1);
  values.set([0, -0, 1e-30, -1e-30, 5, -5]);
  const grads = randomValues(n, 2);

  for (const alpha of [0.3, 0.01, 1.5, -0.5]) {
    test(`alpha ${alpha}: y and dx equal x > 0 ? (x, dy) : (alpha x, alpha dy) exactly, tail included`, async () => {
      const x = tf.tensor1d(values);
      const dy = tf.tensor1d(grads);
      const y = withoutLeaks(() => tf.leakyRelu(x, alpha));
      const dx = withoutLeaks(() => leakyReluGrad(dy, x, alpha));
      const [yv, dxv] = [y.dataSync(), dx.dataSync()];
      for (let i = 0; i < n; i++) {
        const slope = values[i] > 0 ? 1 : Math.fround(alpha);
        assert.equal(yv[i], Math.fround(values[i] * slope), `y[${i}] for x = ${values[i]}`);
        assert.equal(dxv[i], Math.fround(grads[i] * slope), `dx[${i}] for x = ${values[i]}`);
      }
      const names = await kernelsRun(() => [tf.leakyRelu(x, alpha), leakyReluGrad(dy, x, alpha)]);
      assert.ok(names.includes('LeakyRelu') && names.includes('MedvaeLeakyReluGrad'), names.join(','));
      assert.ok(!names.includes('Step'), 'the gradient ran as one kernel');
      tf.dispose([x, dy, y, dx]);
    });
  }

  test("a 4-d activation gives the cpu backend's values", async () => {
    const host = randomValues(2 * 5 * 3 * 7, 3);
    const onWasm = tf.tidy(() => tf.leakyRelu(tf.tensor4d(host, [2, 5, 3, 7]), 0.2).dataSync());
    await tf.setBackend('cpu');
    const onCpu = tf.tidy(() => tf.leakyRelu(tf.tensor4d(host, [2, 5, 3, 7]), 0.2).dataSync());
    await tf.setBackend('wasm');
    // cpu multiplies by alpha in float64 before rounding: equal to float32 rounding.
    assertNear(onWasm, onCpu, 1e-7, 'leakyRelu');
  });

  test('int32 input runs the stock kernel', () => {
    const x = tf.tensor1d([-4, 3, -1, 0, 2], 'int32');
    const y = tf.leakyRelu(x, 0.5);
    assert.deepEqual(Array.from(y.dataSync()), [-2, 3, -0.5, 0, 2]);
    tf.dispose([x, y]);
  });
});

describe('per-channel ops on wasm (SIMD)', () => {
  // rows cross the kernels' 128-row blocks (300 = 2 * 128 + 44) and 1 row; channels 4, 32, 36.
  const cases = [
    { rows: 300, channels: 32, shape: [3, 10, 10, 32] },
    { rows: 1, channels: 4, shape: [1, 4] },
    { rows: 7 * 129, channels: 36, shape: [7, 129, 36] },
  ];
  for (const { rows, channels, shape } of cases) {
    test(`${shape.join('x')}: sums, squared deviations, sum-and-dot and affine maps against float64 sums`, async () => {
      const n = rows * channels;
      const xs = randomValues(n, 10 + channels, 3, 4);
      const dys = randomValues(n, 20 + channels);
      const centers = randomValues(channels, 30 + channels, 3);
      const as = randomValues(channels, 40 + channels);
      const bs = randomValues(channels, 50 + channels);
      const ks = randomValues(channels, 60 + channels);
      const x = tf.tensor(xs, shape);
      const dy = tf.tensor(dys, shape);
      const [center, a, b, k] = [centers, as, bs, ks].map((v) => tf.tensor1d(v));
      const at = (i: number, c: number): number => i * channels + c;

      const sum = withoutLeaks(() => channelSum(x));
      assertNear(
        sum.dataSync(),
        channelSums(rows, channels, (i, c) => xs[at(i, c)]),
        1e-6,
        'channelSum',
      );
      const squared = withoutLeaks(() => channelSquaredDeviationSum(x, center));
      assertNear(
        squared.dataSync(),
        channelSums(rows, channels, (i, c) => (xs[at(i, c)] - centers[c]) ** 2),
        1e-6,
        'squared deviations',
      );
      const { sum: dySum, dot } = channelSumAndDot(dy, x, center);
      assertNear(
        dySum.dataSync(),
        channelSums(rows, channels, (i, c) => dys[at(i, c)]),
        1e-5,
        'sum of dy',
      );
      assertNear(
        dot.dataSync(),
        channelSums(rows, channels, (i, c) => dys[at(i, c)] * (xs[at(i, c)] - centers[c])),
        1e-5,
        'dot',
      );

      const affine = withoutLeaks(() => channelAffine(x, a, k)).dataSync();
      const affine2 = withoutLeaks(() => channelAffine(dy, a, k, x, b)).dataSync();
      for (let i = 0; i < rows; i++) {
        for (let c = 0; c < channels; c++) {
          const j = at(i, c);
          assert.ok(Math.abs(affine[j] - (xs[j] * as[c] + ks[c])) <= 1e-5 * (1 + Math.abs(affine[j])), `affine at ${j}`);
          assert.ok(
            Math.abs(affine2[j] - (dys[j] * as[c] + xs[j] * bs[c] + ks[c])) <= 1e-5 * (1 + Math.abs(affine2[j])),
            `affine2 at ${j}`,
          );
        }
      }
      const names = await kernelsRun(() => [
        channelSum(x),
        channelSquaredDeviationSum(x, center),
        Object.values(channelSumAndDot(dy, x, center)),
        channelAffine(dy, a, k, x, b),
        channelAffine(x, a, k),
      ]);
      for (const kernel of [
        'MedvaeChannelSum',
        'MedvaeChannelSquaredDeviationSum',
        'MedvaeChannelSumAndDot',
        'MedvaeChannelAffine',
        'MedvaeChannelScaleShift',
      ]) {
        assert.ok(names.includes(kernel), `${kernel} ran (${names.join(',')})`);
      }
      tf.dispose([x, dy, center, a, b, k, sum, squared, dySum, dot]);
    });
  }

  test('the one-term affine map keeps infinities (it reads no second term to multiply by 0)', () => {
    const x = tf.tensor2d([Infinity, -Infinity, 1, 2, 3, 4, 5, 6], [2, 4]);
    const a = tf.tensor1d([2, 2, 2, 2]);
    const k = tf.tensor1d([1, 1, 1, 1]);
    assert.deepEqual(Array.from(channelAffine(x, a, k).dataSync()), [Infinity, -Infinity, 3, 5, 7, 9, 11, 13]);
    tf.dispose([x, a, k]);
  });

  test('a 262144-row sum keeps float32 accuracy (blocked summation)', () => {
    const rows = 262144;
    const xs = randomValues(rows * 4, 7, 1, 0.5);
    const x = tf.tensor2d(xs, [rows, 4]);
    const sum = channelSum(x);
    assertNear(
      sum.dataSync(),
      channelSums(rows, 4, (i, c) => xs[i * 4 + c]),
      2e-6,
      'sum of 262144 values near 1',
    );
    tf.dispose([x, sum]);
  });

  test('3 channels (not whole vectors) fall back to tf ops with the same results', async () => {
    const xs = randomValues(5 * 3, 8);
    const x = tf.tensor2d(xs, [5, 3]);
    const names = await kernelsRun(() => channelSum(x));
    assert.ok(!names.includes('MedvaeChannelSum'), names.join(','));
    assertNear(
      channelSum(x).dataSync(),
      channelSums(5, 3, (i, c) => xs[i * 3 + c]),
      1e-6,
      'fallback sum',
    );
    tf.dispose(x);
  });

  test('per-channel inputs of the wrong size are refused by name', () => {
    const x = tf.zeros([2, 8]);
    const wrong = tf.zeros([4]);
    const right = tf.zeros([8]) as tf.Tensor1D;
    assert.throws(
      () => tf.engine().runKernel('MedvaeChannelSquaredDeviationSum', { x, center: wrong }),
      (e: unknown) => e instanceof SimdKernelError && /input 'center' has shape \[4\], expected \[8\]/.test(e.message),
    );
    assert.throws(() => channelAffine(x, right, right, tf.zeros([2, 4]), right), /input 'v' has shape \[2,4\], expected \[2,8\]/);
    tf.dispose([x, wrong, right]);
  });
});

describe('layers on the SIMD kernels (wasm) against the stock layers (cpu)', () => {
  for (const shape of [
    [4, 5, 5, 8],
    [6, 12],
  ]) {
    test(`BatchNorm on ${shape.join('x')}: output, dx, dgamma, dbeta and moving statistics`, async () => {
      const channels = shape[shape.length - 1];
      const size = shape.reduce((p, s) => p * s, 1);
      const xs = randomValues(size, 70, 0.5, 4);
      const weights = randomValues(size, 71);
      const gamma = randomValues(channels, 72, 1);
      const beta = randomValues(channels, 73);
      const run = (layer: tf.layers.Layer): Record<string, Float32Array> =>
        tf.tidy(() => {
          const input = tf.input({ shape: shape.slice(1) });
          const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
          layer.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), tf.zeros([channels]), tf.ones([channels])]);
          const x = tf.tensor(xs, shape);
          const w = tf.tensor(weights, shape);
          const loss = (v: tf.Tensor): tf.Scalar => tf.sum(tf.mul(model.apply(v, { training: true }) as tf.Tensor, w));
          const y = (model.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array;
          const dx = tf.grad(loss)(x).dataSync() as Float32Array;
          const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
          const { grads } = tf.variableGrads(() => loss(x), vars);
          const [dgamma, dbeta] = vars.map((v) => grads[v.name].dataSync() as Float32Array);
          const [movingMean, movingVariance] = model
            .getWeights()
            .slice(2)
            .map((v) => v.dataSync() as Float32Array);
          return { y, dx, dgamma, dbeta, movingMean, movingVariance } as unknown as tf.TensorContainer;
        }) as unknown as Record<string, Float32Array>;
      const ours = run(new BatchNorm({ momentum: 0.9, epsilon: 1e-5 }));
      await tf.setBackend('cpu');
      const stock = run(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }));
      await tf.setBackend('wasm');
      // Three training calls moved the statistics, each time by the same batch variance: biased in the
      // stock layer, unbiased (PyTorch's running_var) in ours.
      const n = size / channels;
      const kept = 0.9 ** 3;
      stock['movingVariance'] = stock['movingVariance']!.map((v) => kept + ((v - kept) * n) / (n - 1));
      for (const key of Object.keys(stock)) assertNear(ours[key], stock[key], 1e-4, key);
    });
  }

  test('LeakyRelu layer: values and gradients equal the stock layer on cpu', async () => {
    const xs = randomValues(2 * 4 * 4 * 8, 80);
    const dys = randomValues(xs.length, 81);
    const run = (layer: tf.layers.Layer): number[][] =>
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [2, 4, 4, 8]);
        const dy = tf.tensor4d(dys, [2, 4, 4, 8]);
        const y = layer.apply(x) as tf.Tensor;
        const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(layer.apply(v) as tf.Tensor, dy)))(x);
        return [Array.from(y.dataSync()), Array.from(dx.dataSync())];
      });
    const ours = run(new LeakyRelu({ alpha: 0.2 }));
    await tf.setBackend('cpu');
    const stock = run(tf.layers.leakyReLU({ alpha: 0.2 }));
    await tf.setBackend('wasm');
    ours.forEach((values, i) => assertNear(values, stock[i], 1e-7, i === 0 ? 'y' : 'dx'));
  });
});

describe('the Adam update on wasm (SIMD)', () => {
  for (const weightDecay of [0, 0.01]) {
    test(`weight decay ${weightDecay}: the same bits as the tf-op arithmetic on cpu, and float64 within 1e-5`, async () => {
      const n = 1027; // whole vectors and a 3-float tail
      const [ps, gs, ms] = [randomValues(n, 90), randomValues(n, 91), randomValues(n, 92, 0, 0.2)];
      const vs = randomValues(n, 93, 0.05, 0.08); // second moments are positive
      const attrs = { weightDecay, beta1: 0.9, beta2: 0.999, stepSize: (0.005 * Math.sqrt(1 - 0.999 ** 3)) / (1 - 0.9 ** 3), epsHat: 1e-8 };
      const run = (): Float32Array[] =>
        tf.tidy(() =>
          adamUpdate(tf.tensor1d(ps), tf.tensor1d(gs), tf.tensor1d(ms), tf.tensor1d(vs), attrs).map((t) => t.dataSync() as Float32Array),
        );
      const names = await kernelsRun(() => adamUpdate(tf.tensor1d(ps), tf.tensor1d(gs), tf.tensor1d(ms), tf.tensor1d(vs), attrs));
      assert.deepEqual(
        names.filter((k) => !k.startsWith('Medvae')),
        [],
        `one kernel ran: ${names.join(',')}`,
      );
      const tensors = tf.memory().numTensors;
      const onWasm = run();
      assert.equal(tf.memory().numTensors, tensors, 'tensors left behind');
      await tf.setBackend('cpu');
      const onCpu = run();
      await tf.setBackend('wasm');
      onWasm.forEach((values, k) => assert.deepEqual(Array.from(values), Array.from(onCpu[k]), ['p', 'm', 'v'][k]));
      for (let i = 0; i < n; i++) {
        const g = gs[i] + weightDecay * ps[i];
        const m = 0.9 * ms[i] + 0.1 * g;
        const v = 0.999 * vs[i] + 0.001 * g * g;
        const p = ps[i] - (attrs.stepSize * m) / (Math.sqrt(v) + attrs.epsHat);
        assertNear([onWasm[0][i], onWasm[1][i], onWasm[2][i]], [p, m, v], 1e-5, `element ${i}`);
      }
    });
  }
});
