// The denoising criterion (train.corrupt): the encoder reads a corrupted copy with the configured
// statistics, the target stays clean, the draw depends on each image's place in the global batch
// (not on the worker count), every model reads the copy through ModelBatch.inputs, a corrupt run is
// reproducible and leak-free, and a bad value is a one-line config error.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError, trainingCorruption } from '../../src/config/validate.ts';
import type { Batch } from '../../src/data/types.ts';
import { createModel } from '../../src/models/index.ts';
import type { Progress } from '../../src/run/progress.ts';
import { corruptRows } from '../../src/train/corrupt.ts';
import { train } from '../../src/train/trainer.ts';
import { parseNoiseSpec, type NoiseSpec } from '../../src/util/noise.ts';
import { context, disposeBatch, fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';

before(async () => {
  await initBackend('wasm');
});

const SIZE = 16;
const CHANNELS = 3;

/** n images of the constant value `value` ([-1, 1]). */
function constantBatch(n: number, value: number): Batch {
  return {
    images: new Float32Array(n * SIZE * SIZE * CHANNELS).fill(value),
    labels: new Float32Array(0),
    indices: Int32Array.from({ length: n }, (_, i) => i),
    n,
    size: SIZE,
    channels: CHANNELS,
    labelWidth: 0,
  };
}

function spec(text: string): NoiseSpec {
  const parsed = parseNoiseSpec(text);
  assert.ok('spec' in parsed, text);
  return parsed.spec;
}

/** Mean and standard deviation on the [0, 1] scale of (corrupted - clean). */
function differenceStats(corrupted: Float32Array, clean: Float32Array): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < clean.length; i++) {
    const d = (corrupted[i]! - clean[i]!) / 2;
    sum += d;
    sq += d * d;
  }
  const mean = sum / clean.length;
  return { mean, std: Math.sqrt(sq / clean.length - mean * mean) };
}

describe('corrupted inputs', () => {
  const batch = constantBatch(8, 0); // intensity 0.5: no clipping within 4 sigma of 0.1
  const corruption = (text: string, step = 3): { spec: NoiseSpec; seed: number; step: number } => ({ spec: spec(text), seed: 9, step });

  it('gaussian:0.1 adds zero-mean noise of standard deviation 0.1 and leaves the batch clean', () => {
    const before = Float32Array.from(batch.images);
    const corrupted = corruptRows(batch, 0, 0, 8, corruption('gaussian:0.1'));
    const { mean, std } = differenceStats(corrupted, batch.images);
    // 6144 values: the standard error of the std is about 0.1 / sqrt(2 * 6144) = 0.0009.
    assert.ok(Math.abs(std - 0.1) < 0.004, `std ${std}`);
    assert.ok(Math.abs(mean) < 0.005, `mean ${mean}`);
    assert.deepEqual(batch.images, before, 'the target images are untouched');
  });

  it('saltpepper:0.2 replaces about 20% of pixels, all channels alike, by black or white in equal shares', () => {
    const corrupted = corruptRows(batch, 0, 0, 8, corruption('saltpepper:0.2'));
    const pixels = corrupted.length / CHANNELS;
    let replaced = 0;
    let white = 0;
    for (let p = 0; p < pixels; p++) {
      const v = corrupted[p * CHANNELS]!;
      if (v === 0) continue;
      replaced++;
      if (v === 1) white++;
      assert.ok(v === 1 || v === -1, `a replaced value is black or white, got ${v}`);
      for (let c = 1; c < CHANNELS; c++) assert.equal(corrupted[p * CHANNELS + c], v);
    }
    // 2048 pixels: the standard error of the share is about 0.009.
    assert.ok(Math.abs(replaced / pixels - 0.2) < 0.04, `replaced ${replaced / pixels}`);
    assert.ok(Math.abs(white / replaced - 0.5) < 0.1, `white ${white / replaced}`);
  });

  it('poisson:20 keeps the mean intensity and has variance u / PEAK', () => {
    const { mean, std } = differenceStats(corruptRows(batch, 0, 0, 8, corruption('poisson:20')), batch.images);
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(std ** 2 - 0.5 / 20) < 0.003, `variance ${std ** 2}`);
  });

  it('an image draws the same noise whatever the worker count and micro-batch size; steps differ', () => {
    const varied = constantBatch(8, 0);
    varied.images.forEach((_, i) => (varied.images[i] = Math.sin(i)));
    const px = SIZE * SIZE * CHANNELS;
    const one = corruptRows(varied, 0, 0, 8, corruption('gaussian:0.2'));
    // Two workers with 4 images each, in micro-batches of 2.
    const parts: Float32Array[] = [];
    for (const rank of [0, 1]) {
      const share: Batch = { ...varied, n: 4, images: varied.images.slice(rank * 4 * px, (rank + 1) * 4 * px) };
      for (const start of [0, 2]) parts.push(corruptRows(share, rank, start, start + 2, corruption('gaussian:0.2')));
    }
    assert.deepEqual(Float32Array.from(parts.flatMap((p) => [...p])), one);
    assert.notDeepEqual(corruptRows(varied, 0, 0, 8, corruption('gaussian:0.2', 4)), one, 'another step, other noise');
  });
});

describe('every model reads ModelBatch.inputs and reconstructs ModelBatch.images', () => {
  for (const name of MODEL_NAMES) {
    it(name, () => {
      const model = createModel(tinyConfig(name), 1, name === 'cvae' ? LABEL_WIDTH : 0);
      const clean = fixedBatch(4, 32, 3);
      const noisy = tf.tidy(() => tf.clipByValue(tf.add(clean.images, tf.randomNormal(clean.images.shape, 0, 0.4, 'float32', 5)), -1, 1));
      const ctx = { ...context(2), training: false };
      const read = (batch: typeof clean): Record<string, number> => {
        const { terms, objectives } = model.losses(batch, { ...ctx, noise: context(2).noise });
        const values = Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v.dataSync()[0]!]));
        tf.dispose([...new Set([...Object.values(terms), ...Object.values(objectives)])]);
        return values;
      };
      const plain = read(clean);
      const before = tf.memory().numTensors;
      assert.deepEqual(read({ ...clean, inputs: clean.images }), plain, 'inputs equal to the images change nothing');
      const denoising = read({ ...clean, inputs: noisy as tf.Tensor4D });
      const noisyTarget = read({ ...clean, images: noisy as tf.Tensor4D });
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      // The KL depends on the encoder alone: it saw the noisy images. The reconstruction is scored against the clean ones.
      assert.equal(denoising['kld'], noisyTarget['kld']);
      assert.notEqual(denoising['kld'], plain['kld']);
      assert.notEqual(denoising['reconstruction'], noisyTarget['reconstruction']);
      tf.dispose(noisy);
      disposeBatch(clean);
      model.dispose();
    });
  }
});

describe('a run with train.corrupt', () => {
  const dir = tempDir('medvae-corrupt-');
  const data = join(dir, 'tiny.npz');
  // 16 images at batch 8: 2 steps an epoch, 4 in all, across an epoch end.
  writeTinyNpz(data, { train: 16, val: 4, test: 4 });
  const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

  async function losses(name: string, corrupt: string): Promise<{ losses: number[]; tensors: Map<number, number> }> {
    const config = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        `data.path=${data}`,
        'train.batch_size=8',
        'train.micro_batch=4',
        'train.backend=wasm',
        'train.epochs=2',
        `train.corrupt=${corrupt}`,
      ],
    });
    const out: number[] = [];
    const tensors = new Map<number, number>();
    await train({
      config,
      runDir: join(dir, name),
      progress: quiet,
      hooks: {
        onStep: (info) => {
          out.push(info.terms['loss']!);
          tensors.set(info.step, tf.memory().numTensors);
        },
      },
    });
    return { losses: out, tensors };
  }

  it('is reproducible, holds no more tensors as it goes, and differs from a clean run', async () => {
    const a = await losses('a', 'gaussian:0.2');
    const b = await losses('b', 'gaussian:0.2');
    const clean = await losses('clean', 'none');
    assert.equal(a.losses.length, 4);
    assert.deepEqual(b.losses, a.losses, 'the same seed gives the same corruption and the same steps');
    assert.notDeepEqual(clean.losses, a.losses, 'the encoder did see corrupted images');
    assert.equal(a.tensors.get(4), a.tensors.get(2), 'tensors after step 2 and step 4');
  });
});

describe('train.corrupt in the config', () => {
  it('reads none and the noises of --noise', () => {
    assert.equal(trainingCorruption(loadConfig({}).train), undefined, "'none' is the default");
    assert.deepEqual(trainingCorruption(loadConfig({ sets: ['train.corrupt=gaussian:0.2'] }).train), { kind: 'gaussian', sigma: 0.2 });
    assert.deepEqual(trainingCorruption(loadConfig({ sets: ['train.corrupt=saltpepper:0.05'] }).train), { kind: 'saltpepper', p: 0.05 });
    assert.deepEqual(trainingCorruption(loadConfig({ sets: ['train.corrupt=poisson:30'] }).train), { kind: 'poisson', peak: 30 });
  });

  for (const [value, says] of [
    ['gauss:0.2', 'expected gaussian:SIGMA'],
    ['gaussian:-1', 'expected gaussian:SIGMA'],
    ['saltpepper:1.5', 'below 1'],
  ] as const) {
    it(`${value}: one line naming the key`, () => {
      assert.throws(
        () => loadConfig({ sets: [`train.corrupt=${value}`] }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.equal(e.key, 'train.corrupt');
          assert.ok(!e.message.includes('\n'), e.message);
          assert.match(e.message, /'train\.corrupt' must be none or a noise/);
          assert.ok(e.message.includes(says), e.message);
          return true;
        },
      );
    });
  }
});
