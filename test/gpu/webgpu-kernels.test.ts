// Every op the models and losses use, on webgpu (tfjs-backend-webgpu on a software adapter)
// against TF.js's cpu backend: values and gradients with respect to every input, for a random
// upstream gradient; and training on webgpu (a software adapter here; the same code on a real
// GPU): a whole step of every model matches wasm; and train() of the VAE-GAN with its gates on,
// under a small memory budget, reads no tensor synchronously (no-sync-readback.test.ts checks the
// other paths on cpu) and splits the batch into the micro-batches the budget allows. One file, so
// one process starts TF.js and the adapter for all, and compiles each shader once (a software
// adapter takes seconds for a model's). Skips, saying why, where webgpu cannot start.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createModel } from '../../src/models/index.ts';
import { computeGradients, disposeGradients } from '../../src/train/step.ts';
import { gpuFootprint, MicroBatchError } from '../../src/train/micro-batch.ts';
import { train, type StepInfo } from '../../src/train/trainer.ts';
import { context, disposeBatch, fixedBatch, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { assertGates, SyncReadTrap, twoSteps } from '../helpers/sync-read-trap.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';

const skip = await webgpuUnavailable();

/** Deterministic values in [-1, 1]. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

interface Case {
  name: string;
  shapes: number[][];
  fn: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Inputs that must stay positive (log, rsqrt). */
  positive?: boolean;
  /** No gradient (argMax, floor, oneHot). */
  noGrad?: boolean;
}

const conv = (stride: number) => (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, 'same');
const convT = (x: tf.Tensor, w: tf.Tensor) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 8, 4], 2, 'same');

const CASES: Case[] = [
  {
    name: 'conv2d 3x3 stride 1',
    shapes: [
      [2, 8, 8, 3],
      [3, 3, 3, 8],
    ],
    fn: conv(1),
  },
  {
    name: 'conv2d 3x3 stride 2',
    shapes: [
      [2, 8, 8, 4],
      [3, 3, 4, 8],
    ],
    fn: conv(2),
  },
  {
    name: 'conv2d 4x4 stride 2 (discriminator)',
    shapes: [
      [2, 8, 8, 4],
      [4, 4, 4, 8],
    ],
    fn: conv(2),
  },
  {
    name: 'conv2dTranspose 3x3 stride 2',
    shapes: [
      [2, 4, 4, 8],
      [3, 3, 4, 8],
    ],
    fn: convT,
  },
  {
    name: 'matMul',
    shapes: [
      [4, 32],
      [32, 16],
    ],
    fn: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  },
  {
    name: 'matMul transposed',
    shapes: [
      [32, 4],
      [16, 32],
    ],
    fn: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, true, true),
  },
  { name: 'leakyRelu', shapes: [[2, 4, 4, 8]], fn: (x) => tf.leakyRelu(x, 0.2) },
  { name: 'relu', shapes: [[64]], fn: (x) => tf.relu(x) },
  { name: 'step', shapes: [[64]], fn: (x) => tf.step(x, 0.2), noGrad: true },
  { name: 'batchNorm', shapes: [[2, 4, 4, 8], [8], [8], [8], [8]], fn: (x, m, v, o, s) => tf.batchNorm(x, m, tf.abs(v), o, s, 1e-3) },
  {
    name: 'moments by channel (BatchNorm statistics)',
    shapes: [[2, 4, 4, 8]],
    fn: (x) => {
      const rows = tf.reshape(x, [-1, 8]);
      const mean = tf.mean(rows, 0);
      return tf.concat([mean, tf.sum(tf.square(tf.sub(rows, mean)), 0)]);
    },
  },
  { name: 'avgPool 2x2 (MS-SSIM)', shapes: [[2, 8, 8, 3]], fn: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid') },
  { name: 'exp, log, log1p', shapes: [[64]], positive: true, fn: (x) => tf.add(tf.add(tf.exp(x), tf.log(x)), tf.log1p(x)) },
  { name: 'rsqrt, div', shapes: [[64], [64]], positive: true, fn: (a, b) => tf.div(tf.rsqrt(a), b) },
  { name: 'softmax, logSoftmax', shapes: [[4, 10]], fn: (x) => tf.add(tf.softmax(x), tf.logSoftmax(x)) },
  { name: 'squaredDifference, abs, neg', shapes: [[64], [64]], fn: (a, b) => tf.add(tf.squaredDifference(a, b), tf.neg(tf.abs(a))) },
  { name: 'minimum, maximum', shapes: [[64], [64]], fn: (a, b) => tf.sub(tf.maximum(a, b), tf.mul(2, tf.minimum(a, b))) },
  { name: 'sum, mean over axes', shapes: [[2, 4, 4, 3]], fn: (x) => tf.concat([tf.sum(x, [1, 2, 3]), tf.mean(x, [0, 1, 2])]) },
  {
    name: 'reshape, transpose, slice, concat, stack, unstack',
    shapes: [[2, 3, 4]],
    fn: (x) =>
      tf.concat([
        tf.reshape(tf.transpose(x, [2, 0, 1]), [-1]),
        tf.reshape(tf.slice(x, [0, 1, 0], [2, 2, 4]), [-1]),
        tf.reshape(tf.stack(tf.unstack(x, 1), 0), [-1]),
      ]),
  },
  { name: 'addN, sigmoid, tanh', shapes: [[64], [64]], fn: (a, b) => tf.addN([tf.sigmoid(a), tf.tanh(b), a]) },
  {
    name: 'argMax, oneHot, floor',
    shapes: [[4, 10]],
    noGrad: true,
    fn: (x) => tf.concat([tf.reshape(tf.oneHot(tf.argMax(x, 1), 10).toFloat(), [-1]), tf.reshape(tf.floor(tf.mul(x, 3)), [-1])]),
  },
];

interface Result {
  value: Float32Array;
  grads: Float32Array[];
}

async function evaluate(c: Case): Promise<Result> {
  const inputs = c.shapes.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = values(n, i + 1);
    if (c.positive) for (let k = 0; k < n; k++) v[k] = 0.1 + Math.abs(v[k]!);
    return tf.tensor(v, shape);
  });
  const y = tf.tidy(() => c.fn(...inputs));
  const value = (await y.data()) as Float32Array;
  let grads: Float32Array[] = [];
  if (!c.noGrad) {
    const dy = tf.tensor(values(y.size, 99), y.shape);
    const gs = tf.tidy(() => tf.grads((...xs: tf.Tensor[]) => c.fn(...xs))(inputs, dy));
    grads = (await Promise.all(gs.map((g) => g.data()))) as Float32Array[];
    tf.dispose([dy, ...gs]);
  }
  tf.dispose([y, ...inputs]);
  return { value, grads };
}

function relativeError(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

describe('webgpu kernels against cpu (relative error <= 1e-4 of the largest value)', { skip }, () => {
  const reference = new Map<string, Result>();
  before(async () => {
    await initBackend('cpu');
    for (const c of CASES) reference.set(c.name, await evaluate(c));
    await initBackend('webgpu', undefined, { allowSoftwareGpu: true });
  });
  for (const c of CASES) {
    test(c.name, async () => {
      assert.equal(tf.getBackend(), 'webgpu');
      const before = tf.memory().numTensors;
      const got = await evaluate(c);
      assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
      const want = reference.get(c.name)!;
      assert.ok(relativeError(got.value, want.value) <= 1e-4, `value: relative error ${relativeError(got.value, want.value)}`);
      assert.equal(got.grads.length, want.grads.length);
      got.grads.forEach((g, i) => {
        const e = relativeError(g, want.grads[i]!);
        assert.ok(e <= 1e-4, `gradient of input ${i}: relative error ${e}`);
      });
    });
  }
});

type StepValues = Map<string, Float32Array>;

/** Every loss term and gradient of one step, by name, read without a synchronous read-back. */
async function stepValues(model: ReturnType<typeof createModel>, batch: ReturnType<typeof fixedBatch>): Promise<StepValues> {
  const grads = computeGradients(model, batch, context(5));
  const out: StepValues = new Map();
  for (const [name, t] of Object.entries(grads.terms)) out.set(`term ${name}`, (await t.data()) as Float32Array);
  for (const [group, map] of Object.entries(grads.groups)) {
    for (const [name, t] of Object.entries(map)) out.set(`${group} ${name}`, (await t.data()) as Float32Array);
  }
  disposeGradients(grads);
  return out;
}

function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

describe('a training step on webgpu matches wasm (relative error <= 1e-3)', { skip }, () => {
  for (const name of MODEL_NAMES) {
    test(name, async () => {
      await initBackend('wasm');
      // 16x16, batch 2: a software adapter compiles every shader anew for every shape.
      const model = createModel(tinyConfig(name, { image_size: 16, hidden_dims: [4, 8], latent_dim: 4 }), 4);
      const batch = fixedBatch(2, 16, 3);
      const want = await stepValues(model, batch);
      // The model's variables and the batch move to the GPU on first use there. The step on wasm
      // made whatever a model makes once, so one webgpu step must leave the count as it found it.
      await initBackend('webgpu', undefined, { allowSoftwareGpu: true });
      const tensors = tf.memory().numTensors;
      const got = await stepValues(model, batch);
      assert.equal(tf.memory().numTensors, tensors, 'no tensor left behind by a webgpu step');
      assert.deepEqual([...got.keys()], [...want.keys()]);
      for (const [key, values] of want) {
        // A gradient that is zero in exact arithmetic (a conv bias before BatchNorm) is rounding
        // noise on both backends: it is held to a hundredth of its network's largest gradient.
        const group = key.split(' ')[0]!;
        const groupScale = Math.max(...[...want].filter(([k]) => k.startsWith(`${group} `)).map(([, v]) => maxAbs(v)));
        const g = got.get(key)!;
        let diff = 0;
        for (let i = 0; i < values.length; i++) diff = Math.max(diff, Math.abs(values[i]! - g[i]!));
        const error = diff / Math.max(maxAbs(values), 1e-2 * groupScale, 1e-30);
        assert.ok(error <= 1e-3, `${key}: relative error ${error}`);
      }
      await initBackend('webgpu', undefined, { allowSoftwareGpu: true });
      disposeBatch(batch);
      model.dispose();
    });
  }
});

describe('train() of the VAE-GAN on webgpu under a 1 MB budget, every synchronous read throwing', { skip }, () => {
  // One run that both tests read: two steps of the network of the step above (16x16, hidden dims
  // [4, 8], latent 4), whose shaders are compiled by now, each step 2 passes of 2 images.
  const dir = tempDir('medvae-webgpu-train-');
  const data = join(dir, 'tiny.npz');
  const config = loadConfig({
    file: 'configs/smoke.yaml',
    sets: [
      'model.name=vae_gan',
      'model.image_size=16',
      'model.hidden_dims=[4, 8]',
      'model.latent_dim=4',
      'model.feature_layer=1',
      'model.gan_margin=0.35',
      `data.path=${data}`,
      'train.batch_size=4',
      'train.micro_batch=auto',
      'train.memory_budget_mb=1',
      'train.epochs=1',
      'train.backend=webgpu',
      'train.allow_software_gpu=true',
      'output.sample_grid=4',
    ],
  });
  const trap = new SyncReadTrap();
  const lines: string[] = [];
  const progress = { info: (m: string) => lines.push(m), step: () => {}, done: () => {} };
  let steps: StepInfo[] = [];
  before(async () => {
    writeTinyNpz(data, { train: 8, val: 2, test: 2, size: 16 });
    trap.install();
    try {
      steps = await twoSteps(join(dir, 'run'), config, progress);
    } finally {
      trap.restore();
    }
  });

  test('two training steps with the gates on the device, the pictures and the checkpoint', () => {
    assertGates(steps);
    assert.deepEqual(trap.attempts, []);
  });

  test('micro-batches below the batch, as many as the budget allows, and the one-line refusal', async () => {
    // gpuFootprint (counted by hand for the smoke model in train.test.ts): 1 MB holds 2
    // images a pass, not 4, and 3 would leave a pass of 1 whose buffers TF.js keeps beside them.
    const f = gpuFootprint(config);
    assert.ok(f.fixedBytes + 2 * f.bytesPerImage <= 2 ** 20 && f.fixedBytes + 4 * f.bytesPerImage > 2 ** 20);
    assert.ok(
      lines.some((l) => /\b2 micro-batch\(es\) of <= 2\b/.test(l)),
      `no line gives the micro-batch:\n${lines.join('\n')}`,
    );
    // The smoke model at 32x32: one image needs more than 1 MB.
    const smoke = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        `data.path=${data}`,
        'train.batch_size=4',
        'train.micro_batch=auto',
        'train.memory_budget_mb=1',
        'train.backend=webgpu',
        'train.allow_software_gpu=true',
      ],
    });
    await assert.rejects(
      train({ config: smoke, runDir: join(dir, 'none'), progress }),
      (e: Error) =>
        e instanceof MicroBatchError && !e.message.includes('\n') && /more than train\.memory_budget_mb \(1 MB\)/.test(e.message),
    );
  });
});
