import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { BatchNorm } from '../../src/models/batch-norm.ts';
import { Conv2D } from '../../src/models/conv2d.ts';
import { LeakyRelu } from '../../src/models/leaky-relu.ts';

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
  const x = tf.randomNormal([4, 5, 5, channels], 0.5, 2, 'float32', 11) as tf.Tensor4D;
  const dyWeights = tf.randomNormal([4, 5, 5, channels], 0, 1, 'float32', 12);
  const gamma = tf.tensor1d([0.5, 1.5, -2]);
  const beta = tf.tensor1d([0.1, -0.3, 2]);

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
  const x = tf.randomNormal([2, 9, 7, 3], 0, 1, 'float32', 11) as tf.Tensor4D;

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
