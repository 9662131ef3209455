// The models and their layers: BatchNorm, LeakyRelu and Conv2D against the stock TF.js layers,
// gradients of a step keyed by stable names and the optimizers that apply them, every VAE variant
// (parameters, seeded weights, batched sampling, checkpoints, loss terms), and the decoder's
// resize-then-convolve upsampling on cpu, wasm and webgpu. One process for all, as a process costs
// about a second to start: each describe block below sets the TF.js backend it computes on in its
// own before().
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { tf } from '../../src/util/tf.ts';
import { BatchNorm } from '../../src/models/batch-norm.ts';
import { Conv2D } from '../../src/models/conv2d.ts';
import { LeakyRelu } from '../../src/models/leaky-relu.ts';
import { initBackend } from '../../src/backend/index.ts';
import { DEFAULT_CONFIG, type ModelConfig } from '../../src/config/schema.ts';
import { biasesCancelledByBatchNorm, buildDecoder, ModelConfigError, trainableVariables } from '../../src/models/blocks.ts';
import { createModel } from '../../src/models/index.ts';
import { applyGradients, computeGradients, createOptimizers, disposeGradients, StepError } from '../../src/train/step.ts';
import { stepNoise } from '../../src/util/rng.ts';
import { trainingFootprint } from '../../src/models/footprint.ts';
import { UpSampling2D } from '../../src/models/up-sampling2d.ts';
import { context, disposeBatch, fixedBatch, LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';

describe('models-layers: BatchNorm, LeakyRelu and Conv2D against the stock layers', () => {
  function maxRelativeError(a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array): number {
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(b[i])));
    return worst;
  }

  /** One training-mode BN layer in a model of its own, with given gamma and beta. */
  function bnModel(layer: tf.layers.Layer, channels: number, gamma: tf.Tensor, beta: tf.Tensor): tf.LayersModel {
    const input = tf.input({ shape: [5, 5, channels] });
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
    layer.setWeights([gamma, beta, tf.zeros([channels]), tf.ones([channels])]);
    return model;
  }

  before(async () => {
    await tf.setBackend('cpu');
  });

  describe('BatchNorm (closed-form backward)', () => {
    const channels = 3;
    let x: tf.Tensor4D;
    let dyWeights: tf.Tensor;
    let gamma: tf.Tensor;
    let beta: tf.Tensor;
    // Made on the backend the block's before() set, not at collection, where another block's
    // import of the wasm backend would make wasm the default before it is initialised.
    before(() => {
      x = tf.randomNormal([4, 5, 5, channels], 0.5, 2, 'float32', 11) as tf.Tensor4D;
      dyWeights = tf.randomNormal([4, 5, 5, channels], 0, 1, 'float32', 12);
      gamma = tf.tensor1d([0.5, 1.5, -2]);
      beta = tf.tensor1d([0.1, -0.3, 2]);
    });

    it('matches tf.layers.batchNormalization in values, gradients and moving mean', () => {
      const ours = new BatchNorm({ momentum: 0.9, epsilon: 1e-5 });
      const reference = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 });
      const results = [ours, reference].map((layer) => {
        const model = bnModel(layer, channels, gamma, beta);
        const loss = (input: tf.Tensor): tf.Scalar => tf.sum(tf.mul(model.apply(input, { training: true }) as tf.Tensor, dyWeights));
        const y = (model.apply(x, { training: true }) as tf.Tensor).dataSync();
        const dx = tf.grad(loss)(x).dataSync();
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const { grads } = tf.variableGrads(() => loss(x), vars);
        const [dgamma, dbeta] = vars.map((v) => grads[v.name].dataSync());
        // Three training calls so far: the moving statistics moved three times.
        const [movingMean, movingVariance] = model
          .getWeights()
          .slice(2)
          .map((w) => w.dataSync());
        return { y, dx, dgamma, dbeta, movingMean, movingVariance };
      });
      const [a, b] = results;
      for (const key of ['y', 'dx', 'dgamma', 'dbeta', 'movingMean'] as const) {
        const err = maxRelativeError(a[key], b[key]);
        assert.ok(err < 1e-5, `${key}: relative error ${err}`);
      }
      assert.ok(Math.abs(b.movingMean[0]) > 0.1, 'the reference moving mean did move');
    });

    /** Per-channel mean and unbiased variance of NHWC values, in float64. */
    function channelMoments(values: Float32Array, c: number): { mean: number[]; unbiased: number[] } {
      const n = values.length / c;
      const mean = Array.from({ length: c }, (_, k) => {
        let s = 0;
        for (let i = k; i < values.length; i += c) s += values[i]!;
        return s / n;
      });
      const unbiased = mean.map((m, k) => {
        let s = 0;
        for (let i = k; i < values.length; i += c) s += (values[i]! - m) ** 2;
        return s / (n - 1);
      });
      return { mean, unbiased };
    }

    function movingStatistics(layer: BatchNorm): { mean: Float32Array; variance: Float32Array } {
      const [mean, variance] = layer
        .getWeights()
        .slice(2)
        .map((w) => w.dataSync() as Float32Array);
      return { mean: mean!, variance: variance! };
    }

    it('moves its moving averages towards the batch mean and the unbiased batch variance, as PyTorch does', () => {
      const layer = new BatchNorm({ momentum: 0.9, epsilon: 1e-5 });
      tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
      const { mean, unbiased } = channelMoments(x.dataSync() as Float32Array, channels);
      const moving = movingStatistics(layer);
      for (let k = 0; k < channels; k++) {
        assert.ok(Math.abs(moving.mean[k]! - 0.1 * mean[k]!) < 1e-5, `moving mean ${k}`);
        assert.ok(Math.abs(moving.variance[k]! - (0.9 + 0.1 * unbiased[k]!)) < 1e-5, `moving variance ${k}`);
      }
    });

    it('with deferred updates, micro-batches committed once give the moving statistics of the whole batch', () => {
      const split = new BatchNorm({ momentum: 0.9, epsilon: 1e-5 });
      split.deferUpdates = true;
      // Uneven parts with different means: their spread must count in the pooled variance.
      const parts = [tf.slice(x, [0], [1]), tf.add(tf.slice(x, [1], [3]), 3)];
      const shifted = tf.concat(parts);
      const reference = new BatchNorm({ momentum: 0.9, epsilon: 1e-5 });
      tf.dispose(reference.apply(shifted, { training: true }) as tf.Tensor);
      for (const part of parts) tf.dispose(split.apply(part, { training: true }) as tf.Tensor);
      assert.deepEqual(Array.from(movingStatistics(split).variance), [1, 1, 1], 'nothing moves before the commit');
      assert.equal(split.pendingStatistics().count, 4 * 5 * 5);
      split.commitStatistics();
      const a = movingStatistics(split);
      const b = movingStatistics(reference);
      assert.ok(maxRelativeError(a.mean, b.mean) < 1e-5, 'moving mean');
      assert.ok(maxRelativeError(a.variance, b.variance) < 1e-5, 'moving variance');
      assert.ok(b.variance[0]! > 1.05, "the parts' different means raised the pooled variance");
      tf.dispose([...parts, shifted]);
    });

    it('accepts the channel axis by index, as Keras files write it, and refuses other axes', () => {
      const byIndex = new BatchNorm({ axis: 3, momentum: 0.9, epsilon: 1e-5 });
      const model = bnModel(byIndex, channels, gamma, beta);
      const y = model.apply(x, { training: false }) as tf.Tensor;
      assert.deepEqual(y.shape, x.shape);
      y.dispose();
      assert.throws(() => bnModel(new BatchNorm({ axis: 1 }), channels, gamma, beta), /only the last axis.*axis 1 of rank 4/);
    });

    it('serialises as a standard BatchNormalization that the stock layer can rebuild', async () => {
      const layer = new BatchNorm({ name: 'net/bn0', momentum: 0.9, epsilon: 1e-5 });
      const model = bnModel(layer, channels, gamma, beta);
      tf.dispose(model.apply(x, { training: true }) as tf.Tensor);
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      assert.ok(saved);
      const topology = JSON.stringify(saved.modelTopology);
      assert.match(topology, /"class_name":"BatchNormalization"/);
      assert.deepEqual(
        saved.weightSpecs?.map((s) => s.name),
        ['net/bn0/gamma', 'net/bn0/beta', 'net/bn0/moving_mean', 'net/bn0/moving_variance'],
      );
      // The stock layer accepts our config as is (what a browser's tf.loadLayersModel does).
      const stock = tf.layers.batchNormalization(layer.getConfig() as tf.serialization.ConfigDict);
      const stockModel = bnModel(stock, channels, gamma, beta);
      stockModel.setWeights(model.getWeights());
      const inference = (m: tf.LayersModel): Float32Array => (m.apply(x, { training: false }) as tf.Tensor).dataSync() as Float32Array;
      assert.ok(maxRelativeError(inference(model), inference(stockModel)) < 1e-5);
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved));
      assert.ok(maxRelativeError(inference(loaded), inference(model)) < 1e-6);
    });
  });

  describe('LeakyRelu (step-function backward)', () => {
    it('matches tf.layers.leakyReLU in values and gradients, including at 0, and rebuilds as the stock layer', () => {
      const x = tf.tensor4d([-2, -0.5, 0, 0.25, 3, -1e-3, 1e-3, 7], [1, 2, 2, 2]);
      const dy = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
      const ours = new LeakyRelu({ alpha: 0.01 });
      const stock = tf.layers.leakyReLU(ours.getConfig() as tf.serialization.ConfigDict);
      const run = (layer: tf.layers.Layer): { y: number[]; dx: number[] } => ({
        y: Array.from((layer.apply(x) as tf.Tensor).dataSync()),
        dx: Array.from(
          tf
            .grad((v: tf.Tensor) => tf.sum(tf.mul(layer.apply(v) as tf.Tensor, dy)))(x)
            .dataSync(),
        ),
      });
      const a = run(ours);
      const b = run(stock);
      assert.deepEqual(a.y, b.y);
      assert.deepEqual(a.dx, b.dx);
      // By hand: slope 1 where x > 0, 0.01 elsewhere (x = 0 included, as TF.js's own gradient).
      const expected = [0.01, 0.02, 0.03, 4, 5, 0.06, 7, 8];
      a.dx.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `dx[${i}] = ${v}`));
      assert.equal(ours.getClassName(), 'LeakyReLU');
      tf.dispose([x, dy]);
    });
  });

  describe('Conv2D (separate conv and bias gradients)', () => {
    let x: tf.Tensor4D;
    before(() => {
      x = tf.randomNormal([2, 9, 7, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    });

    function twins(): { ours: tf.LayersModel; stock: tf.LayersModel } {
      // Linear, as in the models: the stock layer fuses the bias add into the conv only then.
      const args = { filters: 4, kernelSize: 3, strides: 2, padding: 'same' as const };
      const build = (layer: tf.layers.Layer): tf.LayersModel => {
        const input = tf.input({ shape: [9, 7, 3] });
        return tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
      };
      const ours = build(new Conv2D({ ...args, name: 'ours' }));
      const stock = build(tf.layers.conv2d({ ...args, name: 'stock' }));
      stock.setWeights(ours.getWeights());
      return { ours, stock };
    }

    it('computes what the stock layer computes, with the same weights', () => {
      const { ours, stock } = twins();
      const a = ours.predict(x) as tf.Tensor;
      const b = stock.predict(x) as tf.Tensor;
      assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! < 1e-5);
      tf.dispose([a, b]);
    });

    it('differentiates w.r.t. the input without computing a filter gradient, and the other way round', async () => {
      const { ours, stock } = twins();
      const kernels = async (f: () => tf.Tensor): Promise<string[]> => {
        const info = await tf.profile(() => tf.dispose(f()));
        return info.kernels.map((k) => k.name);
      };
      const inputGrad = (m: tf.LayersModel) => () => tf.grad((input: tf.Tensor) => tf.sum(m.apply(input) as tf.Tensor))(x);
      const ourInput = await kernels(inputGrad(ours));
      assert.ok(ourInput.includes('Conv2DBackpropInput'));
      assert.ok(!ourInput.includes('Conv2DBackpropFilter'), `input gradient ran ${ourInput.join(', ')}`);
      // The stock layer's fused op computes both: what this layer exists to avoid.
      assert.ok((await kernels(inputGrad(stock))).includes('Conv2DBackpropFilter'));
      const kernel = ours.getLayer('ours').trainableWeights[0]!.read() as tf.Variable;
      const ourFilter = await kernels(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(ours.apply(x) as tf.Tensor) as tf.Scalar, [kernel]);
        value.dispose();
        return grads[kernel.name]!;
      });
      assert.ok(ourFilter.includes('Conv2DBackpropFilter'));
      assert.ok(!ourFilter.includes('Conv2DBackpropInput'), `filter gradient ran ${ourFilter.join(', ')}`);
    });

    it('serialises as the standard Conv2D and loads back into this layer', async () => {
      const { ours } = twins();
      let saved: tf.io.ModelArtifacts | undefined;
      await ours.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const topology = JSON.stringify(saved!.modelTopology);
      assert.match(topology, /"class_name":"Conv2D"/);
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      assert.ok(loaded.getLayer('ours') instanceof Conv2D);
      const a = ours.predict(x) as tf.Tensor;
      const b = loaded.predict(x) as tf.Tensor;
      assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
      tf.dispose([a, b]);
    });
  });
});

describe('models-step: gradients, cancelled biases and optimizers', () => {
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
        const { value, grads: reference } = tf.variableGrads(
          () => twin.losses(batch, context(3)).objectives[group],
          [...variables.values()],
        );
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
});

describe('models-vae: the Vanilla VAE and every variant', () => {
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
          const samples = model.sample(
            3,
            stepNoise(1, 5),
            tf.oneHot(tf.tensor1d([0, 1, 2], 'int32'), LABEL_WIDTH).toFloat() as tf.Tensor2D,
          );
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
          assert.ok(
            layerClasses.includes('BatchNormalization') && layerClasses.includes('Dense'),
            `${name}/${networkName}: ${layerClasses}`,
          );
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

    it('MS-SSIM VAE: l1_fraction mixes 1 - MS-SSIM with half the mean absolute error, the same reconstruction scored both ways', () => {
      // Same seed, batch and noise: the three models reconstruct identically and differ only in the term.
      const batch = fixedBatch(2, 32, 3);
      const reconstruction = (l1Fraction: number): number => {
        const model = createModel(tinyConfig('mssim_vae', { l1_fraction: l1Fraction, kld_weight: 0.5 }), 3);
        const losses = model.losses(batch, context(7));
        const v = (k: string): number => losses.terms[k].dataSync()[0];
        assert.ok(
          Math.abs(v('loss') - (v('reconstruction') + 0.5 * v('kld'))) < 1e-4 * v('loss'),
          'loss = reconstruction + kld_weight * KL',
        );
        const term = v('reconstruction');
        tf.dispose([losses.terms, losses.objectives]);
        model.dispose();
        return term;
      };
      const structural = reconstruction(0);
      const pixel = reconstruction(1);
      assert.ok(structural > 0 && structural < 1, `1 - MS-SSIM of an untrained decoder: ${structural}`);
      assert.ok(pixel > 0 && Math.abs(pixel - structural) > 1e-3, `half the mean absolute error differs from it: ${pixel}`);
      const mixed = reconstruction(0.16);
      const expected = 0.84 * structural + 0.16 * pixel;
      assert.ok(Math.abs(mixed - expected) < 1e-5, `${mixed} vs ${expected}`);
      disposeBatch(batch);
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
});

describe("models-upsample: the decoder's resize-then-convolve blocks", () => {
  // model.upsample: the decoder's resize-then-convolve blocks (nearest-neighbour doubling, then a 3x3
  // conv) against the transposed convolutions they replace: shapes and parameters, a LayersModel
  // round trip through the files a checkpoint writes, finite gradients in a VAE-GAN step, no
  // checkerboard on a constant feature map, the resize kernels on wasm and webgpu against cpu, and no
  // tensor left behind.

  const SIDE = 32;
  const resize = tinyConfig('vae_gan', { upsample: 'resize', image_size: SIDE, hidden_dims: [8, 16], latent_dim: 4 });
  const transpose: ModelConfig = { ...resize, upsample: 'transpose' };

  /** The decoder saved as a checkpoint saves it (model.json topology + weight specs + one buffer) and loaded back. */
  async function roundTrip(decoder: tf.LayersModel): Promise<{ loaded: tf.LayersModel; classNames: string[] }> {
    let saved: tf.io.ModelArtifacts | undefined;
    await decoder.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      }),
    );
    assert.ok(saved?.modelTopology, 'the decoder saved a topology');
    const topology = JSON.parse(JSON.stringify(saved.modelTopology)) as { config: { layers: { class_name: string }[] } };
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved));
    return { loaded, classNames: topology.config.layers.map((layer) => layer.class_name) };
  }

  /**
   * The decoder's image for a constant feature map at the bottleneck: the dense layer's kernel
   * zeroed and its bias set to one value, so every position and channel of the reshaped map holds it.
   */
  function decodeConstantMap(config: ModelConfig): Float32Array {
    const decoder = buildDecoder(config, 3, config.latent_dim);
    const dense = decoder.getLayer('decoder/dense0');
    const [kernel, bias] = dense.getWeights();
    const constant = [tf.zerosLike(kernel!), tf.fill(bias!.shape, 0.7)];
    dense.setWeights(constant);
    tf.dispose(constant);
    const image = tf.tidy(() => decoder.predict(tf.zeros([1, config.latent_dim])) as tf.Tensor);
    const values = image.dataSync() as Float32Array;
    image.dispose();
    decoder.dispose();
    return values;
  }

  /** max - min of each channel over the pixels at least `border` from every edge, the largest over channels. */
  function interiorRange(values: Float32Array, side: number, channels: number, border: number): number {
    let worst = 0;
    for (let c = 0; c < channels; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let y = border; y < side - border; y++) {
        for (let x = border; x < side - border; x++) {
          const v = values[(y * side + x) * channels + c]!;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      worst = Math.max(worst, hi - lo);
    }
    return worst;
  }

  before(async () => {
    await initBackend('cpu');
  });

  describe('model.upsample resize', () => {
    it('decodes to the image shape with the transposed decoder’s parameter count, and the footprint counts them', () => {
      const model = createModel(resize, 1);
      const twin = createModel(transpose, 1);
      const image = tf.tidy(() => model.decode(tf.zeros([2, resize.latent_dim]) as tf.Tensor2D, undefined, false));
      assert.deepEqual(image.shape, [2, SIDE, SIDE, resize.in_channels]);
      image.dispose();
      assert.equal(model.paramCount(), twin.paramCount());
      assert.equal(trainingFootprint(resize).parameters, model.paramCount());
      const upsampled = trainingFootprint(resize).activations.filter((a) => a.layer.startsWith('upsample'));
      assert.deepEqual(
        upsampled.map((a) => [a.height, a.channels]),
        [
          [16, 16],
          [32, 8],
        ],
      );
      model.dispose();
      twin.dispose();
    });

    it('saves as stock Keras layers (UpSampling2D, Conv2D) and loads back to the same images', async () => {
      const decoder = buildDecoder(resize, 2, resize.latent_dim);
      const { loaded, classNames } = await roundTrip(decoder);
      assert.ok(classNames.includes('UpSampling2D') && !classNames.includes('Conv2DTranspose'), classNames.join(', '));
      const z = tf.randomNormal([3, resize.latent_dim], 0, 1, 'float32', 5);
      const [a, b] = [decoder, loaded].map((net) => net.predict(z) as tf.Tensor);
      assert.ok(a!.shape.join() === b!.shape.join());
      assert.ok(tf.max(tf.abs(tf.sub(a!, b!))).dataSync()[0]! < 1e-6, 'the loaded decoder draws the same images');
      tf.dispose([z, a!, b!]);
      decoder.dispose();
      loaded.dispose();
    });

    it('has finite gradients in a VAE-GAN step, which reach the convs after the doublings, and leaves no tensor behind', () => {
      const small: ModelConfig = { ...resize, image_size: 16 };
      const model = createModel(small, 1);
      const batch = fixedBatch(4, 16, 3);
      const decoder = model.networks['decoder']!;
      /** The decoder objective's gradients w.r.t. the decoder, each checked finite; the sum of |grad| of each given layer's kernel. */
      const step = (layers: string[]): number[] => {
        const variables = decoder.trainableWeights.map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(() => {
          const losses = model.losses(batch, context(0));
          const kept = losses.objectives['decoder']!;
          tf.dispose([...Object.values(losses.terms), ...Object.values(losses.objectives)].filter((t) => t !== kept));
          return kept;
        }, variables);
        const finite = tf.tidy(() => Object.values(grads).every((g) => tf.all(tf.isFinite(g)).dataSync()[0] === 1));
        assert.ok(finite, 'a gradient is not finite');
        const sums = layers.map((layer) =>
          tf.tidy(() => tf.sum(tf.abs(grads[(decoder.getLayer(layer).trainableWeights[0]!.read() as tf.Variable).name]!)).dataSync()[0]!),
        );
        tf.dispose([value, ...Object.values(grads)]);
        return sums;
      };
      // A first step makes what the model keeps across steps (BatchNorm's moving statistics).
      step([]);
      const before = tf.memory().numTensors;
      // The convs after the doublings learn (their biases, which BatchNorm cancels, aside).
      for (const sum of step(['decoder/conv0', 'decoder/conv1'])) assert.ok(sum > 0, 'a kernel after a doubling has a zero gradient');
      assert.equal(tf.memory().numTensors, before, 'tensors left behind by the step');
      disposeBatch(batch);
      model.dispose();
    });

    it('decodes a constant feature map to a constant image away from the border; the transposed convolutions make a checkerboard of it', () => {
      // Each 3x3 conv's zero padding reaches one pixel in at its side, which the doublings after it
      // widen: 1 at 16 -> 2 at 32, + 1 of the 32-pixel conv, + 1 of the output conv = 4.
      const border = 4;
      const resized = interiorRange(decodeConstantMap(resize), SIDE, 3, border);
      const transposed = interiorRange(decodeConstantMap(transpose), SIDE, 3, border);
      assert.ok(resized < 1e-5, `resize: the interior varies by ${resized}`);
      assert.ok(transposed > 1e-3, `transpose: the interior varies by only ${transposed}`);
    });
  });

  describe('the doubling on the other backends', () => {
    /**
     * UpSampling2D's doubling and its gradient for a fixed upstream gradient, on the active backend,
     * at a batch of 2 (where TF.js's wasm ResizeNearestNeighborGrad goes wrong).
     */
    async function doublingAndGradient(): Promise<Float32Array[]> {
      const [value, grad] = tf.tidy(() => {
        const x = tf.tensor4d(
          Float32Array.from({ length: 2 * 5 * 7 * 3 }, (_, i) => Math.sin(i * 0.37)),
          [2, 5, 7, 3],
        );
        const weights = tf.tensor4d(
          Float32Array.from({ length: 2 * 10 * 14 * 3 }, (_, i) => Math.cos(i * 0.11)),
          [2, 10, 14, 3],
        );
        const layer = new UpSampling2D({ size: [2, 2] });
        const f = (input: tf.Tensor): tf.Tensor => layer.apply(input) as tf.Tensor;
        return [f(x), tf.grad((input: tf.Tensor) => tf.sum(tf.mul(f(input), weights)))(x)];
      });
      // Read asynchronously: webgpu in Node cannot read back synchronously.
      const values = [(await value.data()) as Float32Array, (await grad.data()) as Float32Array];
      tf.dispose([value, grad]);
      return values;
    }

    let reference: Float32Array[] = [];
    before(async () => {
      await initBackend('cpu');
      reference = await doublingAndGradient();
      // On cpu it is exactly tf.image.resizeNearestNeighbor.
      const expected = tf.tidy(() =>
        tf.image
          .resizeNearestNeighbor(
            tf.tensor4d(
              Float32Array.from({ length: 2 * 5 * 7 * 3 }, (_, i) => Math.sin(i * 0.37)),
              [2, 5, 7, 3],
            ),
            [10, 14],
          )
          .dataSync(),
      );
      assert.deepEqual(Array.from(reference[0]!), Array.from(expected));
    });
    after(async () => {
      await initBackend('cpu');
    });

    async function matchesCpu(): Promise<void> {
      const before = tf.memory().numTensors;
      const got = await doublingAndGradient();
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      got.forEach((values, i) => {
        const worst = values.reduce((w, v, k) => Math.max(w, Math.abs(v - reference[i]![k]!)), 0);
        assert.ok(worst < 1e-5, `${i === 0 ? 'value' : 'gradient'}: off by ${worst}`);
      });
    }

    it('wasm (and native, which runs the wasm kernels for it) matches cpu', async () => {
      await initBackend('wasm');
      await matchesCpu();
    });

    it('webgpu matches cpu', async (t) => {
      const why = await webgpuUnavailable();
      if (why) {
        t.skip(why);
        return;
      }
      await matchesCpu();
    });
  });

  after(() => {
    tf.disposeVariables();
  });
});
