import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { ModelConfigError } from '../../src/models/blocks.ts';
import { createModel } from '../../src/models/index.ts';
import { stepNoise } from '../../src/util/rng.ts';
import { disposeBatch, fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';

before(async () => {
  await initBackend('wasm');
});

function weightNames(model: { networks: Record<string, tf.LayersModel> }): string[] {
  return Object.values(model.networks).flatMap((n) => (n.weights as LayerVariable[]).map((w) => w.originalName));
}

describe('Vanilla VAE', () => {
  it("has exactly PyTorch-VAE VanillaVAE's 3,937,635 parameters at 64x64x3, latent 128", () => {
    const model = createModel(DEFAULT_CONFIG.model, 1);
    assert.equal(model.paramCount(), 3_937_635);
    model.dispose();
  });

  it('names its variables by network and layer, the same in every model built', () => {
    const a = createModel(tinyConfig('vae'), 1);
    const b = createModel(tinyConfig('vae'), 1);
    const names = weightNames(a);
    assert.equal(names[0], 'encoder/conv0/kernel');
    assert.ok(names.includes('decoder/deconv0/kernel'));
    assert.ok(names.includes('encoder/bn1/moving_variance'));
    assert.deepEqual(weightNames(b), names, 'a second model in the same process gets the same names');
    a.dispose();
    b.dispose();
  });

  it('draws its weights from the seed alone', () => {
    const values = (seed: number): Float32Array[] => {
      const model = createModel(tinyConfig('vae'), seed);
      const out = Object.values(model.networks).flatMap((n) => n.getWeights().map((w) => w.dataSync() as Float32Array));
      model.dispose();
      return out;
    };
    const [a, b, c] = [values(5), values(5), values(6)];
    assert.deepEqual(a, b);
    assert.notDeepEqual(a[0], c[0]);
  });
});

describe('every variant', () => {
  for (const name of MODEL_NAMES) {
    it(`${name}: builds and runs forward at 32 and 64 px with 1 and 3 channels, and at 256 px`, () => {
      const cases = [
        { side: 32, channels: 1 as const, hidden: [8, 16], n: 2 },
        { side: 32, channels: 3 as const, hidden: [8, 16], n: 2 },
        { side: 64, channels: 1 as const, hidden: [8, 16, 16], n: 2 },
        { side: 64, channels: 3 as const, hidden: [8, 16, 16], n: 2 },
        { side: 256, channels: 3 as const, hidden: [4, 4, 8, 8, 8], n: 1 },
        { side: 256, channels: 1 as const, hidden: [4, 4, 8, 8, 8], n: 1 },
      ];
      for (const { side, channels, hidden, n } of cases) {
        const model = createModel(tinyConfig(name, { image_size: side, in_channels: channels, hidden_dims: hidden }), 2);
        const batch = fixedBatch(n, side, channels);
        const recon = model.reconstruct(batch.images, batch.labels);
        const samples = model.sample(3, stepNoise(1, 5), tf.oneHot(tf.tensor1d([0, 1, 2], 'int32'), LABEL_WIDTH).toFloat() as tf.Tensor2D);
        assert.deepEqual(recon.shape, [n, side, side, channels], `${name} ${side}px x${channels}`);
        assert.deepEqual(samples.shape, [3, side, side, channels]);
        const values = recon.dataSync();
        assert.ok(
          values.every((v) => v >= -1 && v <= 1),
          'outputs are tanh images in [-1, 1]',
        );
        const losses = model.losses(batch, { step: 0, minibatchFraction: 0.01, noise: stepNoise(1, 4), training: true });
        for (const [term, t] of Object.entries(losses.terms))
          assert.ok(Number.isFinite(t.dataSync()[0]), `${name}: term ${term} is finite`);
        assert.deepEqual(
          Object.keys(losses.objectives).sort(),
          model
            .paramGroups()
            .map((g) => g.name)
            .sort(),
        );
        tf.dispose([recon, samples, losses.terms, losses.objectives]);
        disposeBatch(batch);
        model.dispose();
      }
    });
  }

  it('samples and reconstructions in batches of 2 equal those made in one pass, and leave no tensor behind', () => {
    for (const name of ['vae', 'cvae', 'joint_vae'] as const) {
      const model = createModel(tinyConfig(name), 3);
      const batch = fixedBatch(5, 32, 3);
      const before = tf.memory().numTensors;
      // Counts the decoder's passes: 5 images in batches of 2 take 3.
      const decode = model.decode.bind(model);
      let passes = 0;
      model.decode = (...args) => {
        passes++;
        return decode(...args);
      };
      const whole = [model.sample(5, stepNoise(1, 6), batch.labels), model.reconstruct(batch.images, batch.labels)];
      assert.equal(passes, 2);
      const batched = [model.sample(5, stepNoise(1, 6), batch.labels, 2), model.reconstruct(batch.images, batch.labels, 2)];
      assert.equal(passes, 2 + 3 + 3);
      const pairs = [
        [whole[0], batched[0]],
        [whole[1], batched[1]],
      ];
      for (const [whole, batched] of pairs) {
        assert.deepEqual(batched!.shape, whole!.shape);
        const a = whole!.dataSync();
        const b = batched!.dataSync();
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        assert.ok(worst <= 1e-5, `${name}: max abs difference ${worst}`);
      }
      tf.dispose(pairs.flat());
      assert.equal(tf.memory().numTensors, before, `${name}: tensors left behind`);
      disposeBatch(batch);
      model.dispose();
    }
  });

  it('rejects an image size the conv stack cannot halve down, naming the keys', () => {
    assert.throws(
      () => createModel(tinyConfig('vae', { image_size: 48, hidden_dims: [8, 8, 8, 8, 8] }), 1),
      (e: unknown) => e instanceof ModelConfigError && /model\.image_size 48/.test(e.message) && /model\.hidden_dims/.test(e.message),
    );
  });

  it('the conditional VAE needs a label width and takes it from the dataset when num_classes is 0', () => {
    assert.throws(() => createModel(tinyConfig('cvae', { num_classes: 0 }), 1), /model\.num_classes/);
    const model = createModel(tinyConfig('cvae', { num_classes: 0 }), 1, 14);
    const batch = fixedBatch(2, 32, 3);
    assert.throws(() => model.reconstruct(batch.images, batch.labels), /width 3.*built for 14/);
    const multiHot = tf.tensor2d([Array.from({ length: 14 }, (_, i) => (i % 3 === 0 ? 1 : 0)), Array(14).fill(0)]);
    const recon = model.reconstruct(batch.images, multiHot);
    assert.deepEqual(recon.shape, [2, 32, 32, 3]);
    tf.dispose([multiHot, recon]);
    disposeBatch(batch);
    model.dispose();
  });

  it('VAE-GAN checks feature_layer against the discriminator depth', () => {
    assert.throws(() => createModel(tinyConfig('vae_gan', { feature_layer: 3 }), 1), /model\.feature_layer must be between 1 and 2/);
  });
});

describe('checkpoints', () => {
  it('every network saves as a plain LayersModel of stock Keras classes and loads back to the same outputs', async () => {
    const stock = new Set([
      'InputLayer',
      'Conv2D',
      'Conv2DTranspose',
      'BatchNormalization',
      'LeakyReLU',
      'Flatten',
      'Dense',
      'Reshape',
      'Activation',
      'Concatenate',
    ]);
    for (const name of ['cvae', 'vae_gan'] as const) {
      const model = createModel(tinyConfig(name), 9);
      for (const [networkName, network] of Object.entries(model.networks)) {
        let saved: tf.io.ModelArtifacts | undefined;
        await network.save(
          tf.io.withSaveHandler(async (artifacts) => {
            saved = artifacts;
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
          }),
        );
        assert.ok(saved);
        const classes = [...JSON.stringify(saved.modelTopology).matchAll(/"class_name":"(\w+)"/g)].map((m) => m[1]);
        const layerClasses = classes.filter((c) => c !== 'Functional' && c !== 'Model' && !/Initializer|Scaling|Zeros|Ones/.test(c));
        assert.ok(layerClasses.includes('BatchNormalization') && layerClasses.includes('Dense'), `${name}/${networkName}: ${layerClasses}`);
        for (const c of layerClasses) assert.ok(stock.has(c), `${name}/${networkName}: non-stock layer class ${c}`);
        const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved));
        const inputs = network.inputs.map((input, i) =>
          tf.randomUniform([2, ...input.shape.slice(1).map((d) => d ?? 1)], -1, 1, 'float32', i + 1),
        );
        const expected = network.predict(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor | tf.Tensor[];
        const got = loaded.predict(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor | tf.Tensor[];
        const [e, g] = [expected, got].map((t) => (Array.isArray(t) ? t : [t]).map((x) => x.dataSync()));
        assert.deepEqual(g, e, `${name}/${networkName} outputs`);
        loaded.dispose();
        tf.dispose([inputs, expected, got]);
      }
      model.dispose();
    }
  });
});

describe('loss terms', () => {
  it('beta-VAE B: loss = reconstruction + gamma * kld_weight * |KL - C| with C annealed by step', () => {
    const config = tinyConfig('beta_vae', { loss_type: 'B', gamma: 10, max_capacity: 20, capacity_max_iter: 100, kld_weight: 0.5 });
    const model = createModel(config, 3);
    const batch = fixedBatch(2, 32, 3);
    const losses = model.losses(batch, { step: 40, minibatchFraction: 0.01, noise: stepNoise(1, 4), training: true });
    const v = (k: string): number => losses.terms[k].dataSync()[0];
    assert.ok(Math.abs(v('capacity') - 8) < 1e-6);
    const expected = v('reconstruction') + 10 * 0.5 * Math.abs(v('kld') - 8);
    assert.ok(Math.abs(v('loss') - expected) < 1e-4 * expected, `${v('loss')} vs ${expected}`);
    assert.ok(v('kld') > 0, 'KL is logged as a positive number');
    tf.dispose([losses.terms, losses.objectives]);
    disposeBatch(batch);
    model.dispose();
  });

  it('JointVAE: loss = alpha * reconstruction + kld_weight * (cont_gamma |KL - C_cont| + disc_gamma |KL_disc - C_disc|)', () => {
    const config = tinyConfig('joint_vae', { alpha: 7, kld_weight: 0.5, cont_capacity: [0, 4, 3, 100], disc_capacity: [0, 0.5, 2, 100] });
    const model = createModel(config, 3);
    const batch = fixedBatch(2, 32, 3);
    const losses = model.losses(batch, { step: 50, minibatchFraction: 0.01, noise: stepNoise(1, 5), training: true });
    const v = (k: string): number => losses.terms[k].dataSync()[0];
    assert.ok(Math.abs(v('capacity_continuous') - 2) < 1e-6);
    assert.ok(Math.abs(v('capacity_discrete') - 0.25) < 1e-6);
    const expected = 7 * v('reconstruction') + 0.5 * (3 * Math.abs(v('kld') - 2) + 2 * Math.abs(v('kld_discrete') - 0.25));
    assert.ok(Math.abs(v('loss') - expected) < 1e-4 * expected, `${v('loss')} vs ${expected}`);
    tf.dispose([losses.terms, losses.objectives]);
    disposeBatch(batch);
    model.dispose();
  });

  it('JointVAE anneals its temperature with the step', () => {
    const config = tinyConfig('joint_vae', { temperature: 0.5, anneal_rate: 0.01, anneal_steps: 10, min_temperature: 0.1 });
    const model = createModel(config, 3);
    const batch = fixedBatch(2, 32, 3);
    const temperature = (step: number): number => {
      const losses = model.losses(batch, { step, minibatchFraction: 0.01, noise: stepNoise(1, step), training: true });
      const t = losses.terms['temperature'].dataSync()[0];
      tf.dispose([losses.terms, losses.objectives]);
      return t;
    };
    assert.ok(Math.abs(temperature(0) - 0.5) < 1e-6);
    assert.ok(Math.abs(temperature(25) - 0.5 * Math.exp(-0.2)) < 1e-6);
    assert.ok(Math.abs(temperature(100_000) - 0.1) < 1e-6);
    disposeBatch(batch);
    model.dispose();
  });
});
