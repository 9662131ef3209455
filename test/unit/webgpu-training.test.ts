// Training on webgpu (a software adapter here; the same code on a real GPU): a whole step of every
// model matches wasm. Skips, saying why, where webgpu cannot start.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { createModel } from '../../src/models/index.ts';
import { computeGradients, disposeGradients } from '../../src/train/step.ts';
import { context, disposeBatch, fixedBatch, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';

const skip = await webgpuUnavailable();

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
      // The model's variables and the batch move to the GPU on first use there.
      await initBackend('webgpu', undefined, { allowSoftwareGpu: true });
      const got = await stepValues(model, batch);
      const tensors = tf.memory().numTensors;
      await stepValues(model, batch);
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
