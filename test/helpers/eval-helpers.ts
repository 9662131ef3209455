// Shared fixtures of the eval tests: a tiny synthetic labelled image set and a stand-in model
// whose outputs are known in closed form.
import { tf } from '../../src/util/tf.ts';
import type { ModelConfig, ModelName } from '../../src/config/schema.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import type { Encoding, ModelLosses, ParamGroup, StepNoise, VaeModel } from '../../src/models/base.ts';
import type { LabelledImages } from '../../src/eval/images.ts';
import { mulberry32 } from '../../src/util/rng.ts';

/**
 * n grey size x size images in 3 classes: class c has a bright horizontal band in its third of the
 * image over a dark background, plus seeded uniform noise of amplitude `noise`.
 */
export function bandImages(n: number, size: number, seed: number, noise = 0.2): LabelledImages {
  const random = mulberry32(seed);
  const images = new Float32Array(n * size * size);
  const labels = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels[i * 3 + c] = 1;
    for (let y = 0; y < size; y++) {
      const inBand = Math.floor((y * 3) / size) === c;
      for (let x = 0; x < size; x++) {
        const v = (inBand ? 0.6 : -0.6) + noise * (2 * random() - 1);
        images[(i * size + y) * size + x] = Math.max(-1, Math.min(1, v));
      }
    }
  }
  return { images, labels, n, size, channels: 1, labelWidth: 3, labelKind: 'class' };
}

/** The band images with their labels dropped: an unlabelled dataset. */
export function unlabelled(data: LabelledImages): LabelledImages {
  return { ...data, labels: new Float32Array(0), labelWidth: 0, labelKind: 'none' };
}

/** Multi-label variant: finding j = "band j is bright"; image i shows bands i % 3 and, for odd i, band (i + 1) % 3. */
export function multiBandImages(n: number, size: number, seed: number): LabelledImages {
  const random = mulberry32(seed);
  const images = new Float32Array(n * size * size);
  const labels = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    labels[i * 3 + (i % 3)] = 1;
    if (i % 2 === 1) labels[i * 3 + ((i + 1) % 3)] = 1;
    for (let y = 0; y < size; y++) {
      const band = Math.floor((y * 3) / size);
      for (let x = 0; x < size; x++) images[(i * size + y) * size + x] = (labels[i * 3 + band] ? 0.6 : -0.6) + 0.2 * (2 * random() - 1);
    }
  }
  return { images, labels, n, size, channels: 1, labelWidth: 3, labelKind: 'multilabel' };
}

export function tinyModelConfig(name: ModelConfig['name'], size: number): ModelConfig {
  return {
    ...DEFAULT_CONFIG.model,
    name,
    in_channels: 1,
    image_size: size,
    latent_dim: 4,
    hidden_dims: [4, 8],
    num_classes: 3,
    categorical_dim: 3,
    feature_layer: 2,
  };
}

/**
 * A model with closed-form outputs: the posterior is N(mu = 1, var = 1) in `latentDim` dimensions
 * (KL = latentDim / 2 per image), every decoded or reconstructed image is the constant `value`,
 * and samples are copies of `samples` images (cycled), so sample quality is under test control.
 */
export class StandInModel implements VaeModel {
  readonly kind: ModelName = 'vae';
  readonly networks: Record<string, tf.LayersModel> = {};
  readonly labelWidth: number = 0;
  readonly gaussianLatent: boolean;

  constructor(
    readonly config: ModelConfig,
    private readonly value: number,
    private readonly samples: LabelledImages,
    private readonly latentDim = 2,
    /** JointVAE-style discrete latent: the same logits for every image. */
    private readonly discreteLogits?: number[],
  ) {
    this.gaussianLatent = discreteLogits === undefined;
  }

  paramGroups(): ParamGroup[] {
    return [];
  }

  encode(images: tf.Tensor4D): Encoding {
    const n = images.shape[0];
    const enc: Encoding = { mu: tf.ones([n, this.latentDim]), logvar: tf.zeros([n, this.latentDim]) };
    if (this.discreteLogits) enc.discreteLogits = [tf.tile(tf.tensor2d([this.discreteLogits]), [n, 1]) as tf.Tensor2D];
    return enc;
  }

  reparameterize(enc: Encoding): tf.Tensor2D {
    return enc.mu.clone();
  }

  decode(z: tf.Tensor2D): tf.Tensor4D {
    const { size, channels } = this.samples;
    return tf.fill([z.shape[0], size, size, channels], this.value) as tf.Tensor4D;
  }

  private drawn = 0;

  sample(n: number): tf.Tensor4D {
    const per = this.samples.size * this.samples.size * this.samples.channels;
    const out = new Float32Array(n * per);
    for (let i = 0; i < n; i++, this.drawn++) {
      const k = this.drawn % this.samples.n;
      out.set(this.samples.images.subarray(k * per, (k + 1) * per), i * per);
    }
    return tf.tensor4d(out, [n, this.samples.size, this.samples.size, this.samples.channels]);
  }

  reconstruct(images: tf.Tensor4D): tf.Tensor4D {
    return this.decode(tf.zeros([images.shape[0], this.latentDim]));
  }

  losses(): ModelLosses {
    throw new Error('StandInModel is not trainable');
  }

  paramCount(): number {
    return 0;
  }

  dispose(): void {}
}

/**
 * A conditional stand-in whose samples show their label trivially: asked for class c, it returns the
 * next band image of class (c + shift) mod 3 from `pool` (bandImages, class i % 3). shift 0 is an
 * honest conditional model; shift 1 draws every sample from the wrong class.
 */
export class LabelledStandIn extends StandInModel {
  override readonly kind: ModelName = 'cvae';
  override readonly labelWidth = 3;
  private readonly next = [0, 0, 0];

  constructor(
    config: ModelConfig,
    private readonly pool: LabelledImages,
    private readonly shift = 0,
  ) {
    super(config, 0, pool);
  }

  override sample(n: number, _noise?: StepNoise, labels?: tf.Tensor2D): tf.Tensor4D {
    if (!labels || labels.shape[1] !== 3) throw new Error('LabelledStandIn needs 3-wide one-hot labels');
    const classes = tf.tidy(() => tf.argMax(labels, 1).dataSync());
    const per = this.pool.size * this.pool.size * this.pool.channels;
    const out = new Float32Array(n * per);
    for (let i = 0; i < n; i++) {
      const c = (classes[i] + this.shift) % 3;
      // Pool image c, c + 3, c + 6, ... in turn.
      const k = (c + 3 * this.next[c]++) % this.pool.n;
      out.set(this.pool.images.subarray(k * per, (k + 1) * per), i * per);
    }
    return tf.tensor4d(out, [n, this.pool.size, this.pool.size, this.pool.channels]);
  }
}
