// model.upsample: the decoder's resize-then-convolve blocks (nearest-neighbour doubling, then a 3x3
// conv) against the transposed convolutions they replace: shapes and parameters, a LayersModel
// round trip through the files a checkpoint writes, finite gradients in a VAE-GAN step, no
// checkerboard on a constant feature map, the resize kernels on wasm and webgpu against cpu, and no
// tensor left behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import type { ModelConfig } from '../../src/config/schema.ts';
import { buildDecoder } from '../../src/models/blocks.ts';
import { trainingFootprint } from '../../src/models/footprint.ts';
import { createModel } from '../../src/models/index.ts';
import { UpSampling2D } from '../../src/models/up-sampling2d.ts';
import { context, disposeBatch, fixedBatch, tinyConfig } from '../helpers/models-helpers.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';

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
