import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import { biasesCancelledByBatchNorm, trainableVariables } from '../../src/models/blocks.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients, StepError } from '../../src/train/step.ts';
import { context, disposeBatch, fixedBatch, tinyConfig } from '../helpers/models-helpers.ts';

before(async () => {
  await initBackend('wasm');
});

function flat(map: tf.NamedTensorMap): Float32Array[] {
  return Object.values(map).map((t) => t.dataSync() as Float32Array);
}

describe('computeGradients', () => {
  it('is a pure function of (weights, batch, noise) and keys gradients by stable names', () => {
    const model = createModel(tinyConfig('vae'), 4);
    const batch = fixedBatch(2, 32, 3);
    const a = computeGradients(model, batch, context(7));
    const b = computeGradients(model, batch, context(7));
    const c = computeGradients(model, batch, context(8));
    assert.deepEqual(Object.keys(a.groups), ['model']);
    const keys = Object.keys(a.groups['model']);
    assert.deepEqual(keys, [...trainableVariables([model.networks['encoder'], model.networks['decoder']]).keys()]);
    assert.equal(keys[0], 'encoder/conv0/kernel');
    assert.deepEqual(flat(a.groups['model']), flat(b.groups['model']));
    assert.notDeepEqual(flat(a.groups['model'])[0], flat(c.groups['model'])[0]);
    for (const g of [a, b, c]) disposeGradients(g);
    disposeBatch(batch);
    model.dispose();
  });

  it('VAE-GAN: each group gets the gradient of its own objective from one forward pass, equal to a forward pass per objective', () => {
    const config = tinyConfig('vae_gan');
    const model = createModel(config, 4);
    const twin = createModel(config, 4);
    const batch = fixedBatch(2, 32, 3);
    const grads = computeGradients(model, batch, context(3));
    assert.deepEqual(Object.keys(grads.groups), ['encoder', 'decoder', 'discriminator']);
    const movingMean = (m: typeof model): Float32Array => {
      const weight = m.networks['encoder'].weights.find((w) => w.name.startsWith('encoder/bn0/moving_mean'));
      assert.ok(weight);
      return weight.read().dataSync() as Float32Array;
    };
    // Reference: each objective from its own full forward pass of the twin (tf.variableGrads), same noise.
    for (const [pass, group] of ['decoder', 'encoder', 'discriminator'].entries()) {
      const variables = trainableVariables([twin.networks[group]]);
      const { value, grads: reference } = tf.variableGrads(() => twin.losses(batch, context(3)).objectives[group], [...variables.values()]);
      if (pass === 0) assert.deepEqual(movingMean(model), movingMean(twin), 'one step moves the statistics as much as one forward pass');
      const ours = grads.groups[group];
      assert.deepEqual(Object.keys(ours), [...variables.keys()]);
      let nonzero = 0;
      for (const [stable, variable] of variables) {
        const got = ours[stable].dataSync();
        const want = reference[variable.name].dataSync();
        for (let i = 0; i < got.length; i++) {
          assert.ok(
            Math.abs(got[i] - want[i]) <= 1e-4 * Math.max(1, Math.abs(want[i])),
            `${group}: ${stable}[${i}] ${got[i]} vs ${want[i]}`,
          );
          if (want[i] !== 0) nonzero++;
        }
      }
      assert.ok(nonzero > 0, `${group}: the reference gradient is not all zeros`);
      tf.dispose([value, reference]);
    }
    disposeGradients(grads);
    disposeBatch(batch);
    model.dispose();
    twin.dispose();
  });
});

describe('biases that BatchNorm cancels', () => {
  it("are exactly the conv stacks' biases, get exact zeros, and their computed gradient is only rounding noise", () => {
    const model = createModel(tinyConfig('vae'), 4);
    const networks = [model.networks['encoder'], model.networks['decoder']];
    // hidden_dims [16, 32]: two encoder convs, one deconv per reversed dim after the first and the last deconv.
    assert.deepEqual(
      [...biasesCancelledByBatchNorm(networks)],
      ['encoder/conv0/bias', 'encoder/conv1/bias', 'decoder/deconv0/bias', 'decoder/deconv1/bias'],
    );
    const batch = fixedBatch(2, 32, 3);
    const ours = computeGradients(model, batch, context(5));
    const variables = trainableVariables(networks);
    const { value, grads: reference } = tf.variableGrads(
      () => model.losses(batch, context(5)).objectives['model'],
      [...variables.values()],
    );
    const largest = Math.max(...[...variables.values()].map((v) => tf.tidy(() => tf.max(tf.abs(reference[v.name])).dataSync()[0])));
    for (const [stable, variable] of variables) {
      const got = ours.groups['model'][stable].dataSync();
      const want = reference[variable.name].dataSync();
      if (biasesCancelledByBatchNorm(networks).has(stable)) {
        assert.ok(
          got.every((g) => g === 0),
          `${stable} is exactly zero`,
        );
        assert.ok(
          want.every((w) => Math.abs(w) <= 1e-5 * largest),
          `${stable}'s computed gradient is noise: ${Math.max(...want.map(Math.abs))} vs ${largest}`,
        );
      } else {
        assert.ok(
          want.some((w) => Math.abs(w) > 1e-5 * largest),
          `${stable} has a real gradient`,
        );
      }
    }
    tf.dispose([value, reference]);
    disposeGradients(ours);
    disposeBatch(batch);
    model.dispose();
  });
});

describe('optimizers', () => {
  it('use lr_discriminator for the discriminator and lr elsewhere', () => {
    const model = createModel(tinyConfig('vae_gan'), 4);
    const optimizers = createOptimizers(model, { ...DEFAULT_CONFIG.train, lr: 0.01, lr_discriminator: 0.002 });
    assert.equal(optimizers['encoder'].lr, 0.01);
    assert.equal(optimizers['decoder'].lr, 0.01);
    assert.equal(optimizers['discriminator'].lr, 0.002);
    model.dispose();
  });

  it('apply weight decay as L2 added to the gradient (a zero gradient still shrinks the weights)', () => {
    const model = createModel(tinyConfig('vae'), 4);
    const lr = 0.01;
    const optimizers = createOptimizers(model, { ...DEFAULT_CONFIG.train, lr, weight_decay: 0.1 });
    const variables = optimizers['model'].variables;
    const kernel = variables['encoder/conv0/kernel'];
    assert.ok(kernel);
    const before = kernel.dataSync().slice();
    const zeros: tf.NamedTensorMap = {};
    for (const [name, v] of Object.entries(variables)) zeros[name] = tf.zerosLike(v);
    applyGradients(optimizers, { model: zeros });
    const after = kernel.dataSync();
    // Adam's first step moves every weight by lr against the sign of its gradient, here 0.1 * w.
    for (let i = 0; i < before.length; i++) {
      if (Math.abs(before[i]) < 1e-3) continue;
      assert.ok(Math.abs(before[i] - Math.sign(before[i]) * lr - after[i]) < 1e-4, `weight ${i}: ${before[i]} -> ${after[i]}`);
    }
    tf.dispose(zeros);
    model.dispose();
  });

  it('refuse gradients of an unknown group or variable', () => {
    const model = createModel(tinyConfig('vae'), 4);
    const optimizers = createOptimizers(model, DEFAULT_CONFIG.train);
    const g = tf.zeros([1]);
    assert.throws(
      () => applyGradients(optimizers, { critic: { x: g } }),
      (e: unknown) => e instanceof StepError && /critic/.test(e.message),
    );
    assert.throws(() => applyGradients(optimizers, { model: { 'encoder/nope/kernel': g } }), /encoder\/nope\/kernel/);
    g.dispose();
    model.dispose();
  });
});
