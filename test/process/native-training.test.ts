// Training on the native backend: a whole step of every model matches wasm, no tensor is left
// behind, and a run resumes bit for bit. That data-parallel training equals one worker
// accumulating micro-batches, bit for bit, is test/process/native-determinism.test.ts's. Skips,
// saying why, where onnxruntime-node cannot load.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { forceCandidate, nativeCallCounts } from '../../src/backend/native/kernels.ts';
import { createModel } from '../../src/models/index.ts';
import { computeGradients, disposeGradients } from '../../src/train/step.ts';
import { latestCheckpoint } from '../../src/run/checkpoint.ts';
import { context, disposeBatch, fixedBatch, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { checkpointDigests } from '../helpers/checkpoint-weights.ts';
import { medvaeInProcess, medvaeProcess } from '../helpers/medvae-cli.ts';

const skip = nativeUnavailable();

const dir = mkdtempSync(join(tmpdir(), 'medvae-native-train-'));
after(() => rmSync(dir, { recursive: true, force: true }));
// Graph choices of this test's own, not the machine's.
process.env['MEDVAE_NATIVE_CHOICES'] = join(dir, 'choices.json');

function maxAbs(values: Float32Array): number {
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]! - got[i]!));
  return m;
}

type StepValues = Map<string, Float32Array>;

/** Every loss term and gradient of one step, by name. */
function stepValues(model: ReturnType<typeof createModel>, batch: ReturnType<typeof fixedBatch>): StepValues {
  const grads = computeGradients(model, batch, context(5));
  const out: StepValues = new Map();
  for (const [name, t] of Object.entries(grads.terms)) out.set(`term ${name}`, t.dataSync().slice() as Float32Array);
  for (const [group, map] of Object.entries(grads.groups)) {
    for (const [name, t] of Object.entries(map)) out.set(`${group} ${name}`, t.dataSync().slice() as Float32Array);
  }
  disposeGradients(grads);
  return out;
}

describe('a training step on native matches wasm (relative error <= 1e-4)', { skip }, () => {
  before(async () => {
    forceCandidate('native');
    await initBackend('wasm');
  });
  after(() => forceCandidate(undefined));
  for (const name of MODEL_NAMES) {
    test(name, async () => {
      // Widths enough for every product to run on onnxruntime, not on the wasm kernel.
      const model = createModel(tinyConfig(name, { hidden_dims: [32, 64], latent_dim: 16 }), 4);
      const batch = fixedBatch(8, 32, 3);
      await initBackend('wasm');
      const want = stepValues(model, batch);
      await initBackend('native');
      const tensors = tf.memory().numTensors;
      const calls = nativeCallCounts().native;
      const got = stepValues(model, batch);
      assert.equal(tf.memory().numTensors, tensors, 'no tensor left behind by a native step');
      assert.ok(nativeCallCounts().native - calls >= 6, 'the convolutions ran on onnxruntime');
      assert.deepEqual([...got.keys()], [...want.keys()]);
      for (const [key, values] of want) {
        // A gradient that is zero in exact arithmetic (a conv bias before BatchNorm) is rounding
        // noise on both backends: it is held to a hundredth of its network's largest gradient.
        const group = key.split(' ')[0]!;
        const groupScale = Math.max(...[...want].filter(([k]) => k.startsWith(`${group} `)).map(([, v]) => maxAbs(v)));
        const error = maxAbsDiff(got.get(key)!, values) / Math.max(maxAbs(values), 1e-2 * groupScale, 1e-30);
        assert.ok(error <= 1e-4, `${key}: relative error ${error}`);
      }
      disposeBatch(batch);
      model.dispose();
    });
  }
});

// ---- end to end through the command line, on native -------------------------------------------

const data = join(dir, 'tiny.npz');
// 32 images at batch 16: 2 steps an epoch.
writeTinyNpz(data, { train: 32, val: 8, test: 8 });
// Wider than smoke.yaml's [8, 16], so that the convolutions are worth onnxruntime's while.
const base = [
  '--config',
  'configs/smoke.yaml',
  '--data',
  data,
  '--backend',
  'native',
  '--log-format',
  'plain',
  '--set',
  'model.hidden_dims=[32,64]',
];

test(
  'native: 2 epochs straight equal 1 epoch, stop, resume 1 epoch, bit for bit (the resumed run follows the run plan)',
  { skip },
  async () => {
    // The two runs through the commander wiring in this process (native already loaded by the tests
    // above); the resume in a process of its own, as a stopped run is resumed, which has nothing but
    // the run directory and the machine's graph choices (MEDVAE_NATIVE_CHOICES) to go by.
    const straight = join(dir, 'straight');
    const r1 = await medvaeInProcess(['train', ...base, '--epochs', '2', '--out', straight]);
    assert.equal(r1.status, 0, r1.stderr);
    const halves = join(dir, 'halves');
    const r2 = await medvaeInProcess(['train', ...base, '--epochs', '1', '--out', halves]);
    assert.equal(r2.status, 0, r2.stderr);
    const r3 = medvaeProcess(['train', '--resume', halves, '--epochs', '2', '--backend', 'native', '--log-format', 'plain'], {
      timeoutMs: 240_000,
    });
    assert.equal(r3.status, 0, r3.stderr);
    assert.match(r3.stderr, /backend: native \(onnxruntime-node, \d+ threads?; requested\)/);
    const a = latestCheckpoint(join(straight, 'checkpoints'))!;
    const b = latestCheckpoint(join(halves, 'checkpoints'))!;
    assert.ok(a.endsWith('step-0000004') && b.endsWith('step-0000004'), `${a} ${b}`);
    assert.deepEqual(checkpointDigests(b), checkpointDigests(a));
  },
);
