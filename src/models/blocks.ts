// The building blocks every variant composes: seeded, deterministically named layers, the
// PyTorch-VAE conv encoder and deconv decoder stacks, reparameterisation and variable naming.
// Variants differ in their heads, inputs and losses, never in copies of these stacks.
import { tf } from '../util/tf.ts';
import type { LayerVariable, SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { ModelConfig } from '../config/schema.ts';
import { hashKeys, Stream } from '../util/rng.ts';
import type { StepNoise } from './base.ts';
import { BatchNorm } from './batch-norm.ts';
import { Conv2D } from './conv2d.ts';
import { LeakyRelu } from './leaky-relu.ts';
import { UpSampling2D } from './up-sampling2d.ts';

/** A model.* setting that cannot build a model; the message names the key. */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

/** A call with tensors the model was not built for (missing labels, wrong label width...). */
export class ModelInputError extends Error {
  override name = 'ModelInputError';
}

/** PyTorch's nn.LeakyReLU default slope (tf.layers' default is 0.3). */
const LEAKY_SLOPE = 0.01;
/** PyTorch BatchNorm2d: momentum 0.1 (0.9 in the Keras convention), eps 1e-5. */
const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;

/**
 * Makes the layers of one network. Names are `<network>/<kind><index>` (e.g. `encoder/conv0`), so
 * variables are `encoder/conv0/kernel` in every process; weights draw from seeds hashed from
 * (run seed, network, layer index), so a model is a pure function of its seed.
 */
export class LayerFactory {
  private readonly counts = new Map<string, number>();
  private layerIndex = 0;

  constructor(
    readonly network: string,
    private readonly seed: number,
    private readonly networkKey: number,
  ) {}

  private next(kind: string): string {
    const i = this.counts.get(kind) ?? 0;
    this.counts.set(kind, i + 1);
    return `${this.network}/${kind}${i}`;
  }

  /** PyTorch's default init (kaiming_uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  private kernelInit(): ReturnType<typeof tf.initializers.varianceScaling> {
    const seed = hashKeys(this.seed, Stream.init, this.networkKey, this.layerIndex++);
    return tf.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform', seed });
  }

  conv(filters: number, strides: 1 | 2, kernelSize = 3): tf.layers.Layer {
    return new Conv2D({
      name: this.next('conv'),
      filters,
      kernelSize,
      strides,
      padding: 'same',
      kernelInitializer: this.kernelInit(),
    });
  }

  /** ConvTranspose2d(k3, s2, padding 1, output_padding 1) doubles the side like TF's 'same'. */
  deconv(filters: number): tf.layers.Layer {
    return tf.layers.conv2dTranspose({
      name: this.next('deconv'),
      filters,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      kernelInitializer: this.kernelInit(),
    });
  }

  /**
   * Doubles the side by repeating each pixel (nearest neighbour; TF.js's bilinear UpSampling2D
   * samples the legacy grid without half-pixel centres, which shifts the image a quarter pixel per
   * layer). No weights; saved as the stock Keras layer.
   */
  upsample(): tf.layers.Layer {
    return new UpSampling2D({ name: this.next('upsample'), size: [2, 2], interpolation: 'nearest' });
  }

  dense(units: number): tf.layers.Layer {
    return tf.layers.dense({ name: this.next('dense'), units, kernelInitializer: this.kernelInit() });
  }

  batchNorm(): tf.layers.Layer {
    return new BatchNorm({ name: this.next('bn'), momentum: BN_MOMENTUM, epsilon: BN_EPSILON });
  }

  leakyRelu(): tf.layers.Layer {
    return new LeakyRelu({ name: this.next('lrelu'), alpha: LEAKY_SLOPE });
  }

  /** Shape-only layers still get deterministic names, so no global counter ever shows up. */
  named<T>(kind: string, make: (name: string) => T): T {
    return make(this.next(kind));
  }
}

function apply(layer: tf.layers.Layer, x: SymbolicTensor | SymbolicTensor[]): SymbolicTensor {
  return layer.apply(x) as SymbolicTensor;
}

/** Side after the conv stack: image_size halved once per hidden layer. */
export function bottleneckSide(config: Pick<ModelConfig, 'image_size' | 'hidden_dims'>): number {
  const side = config.image_size / 2 ** config.hidden_dims.length;
  if (!Number.isInteger(side) || side < 1) {
    throw new ModelConfigError(
      `model.image_size ${config.image_size} cannot be halved ${config.hidden_dims.length} times (model.hidden_dims has ${config.hidden_dims.length} entries): use a power of two >= ${2 ** config.hidden_dims.length}`,
    );
  }
  return side;
}

/** Conv(k3, s2) + BN + LeakyReLU per hidden dim; returns every block's output (features for VAE-GAN). */
export function convStack(f: LayerFactory, x: SymbolicTensor, hiddenDims: readonly number[]): SymbolicTensor[] {
  const outputs: SymbolicTensor[] = [];
  let h = x;
  for (const dim of hiddenDims) {
    h = apply(f.leakyRelu(), apply(f.batchNorm(), apply(f.conv(dim, 2), h)));
    outputs.push(h);
  }
  return outputs;
}

export function flatten(f: LayerFactory, x: SymbolicTensor): SymbolicTensor {
  return apply(
    f.named('flatten', (name) => tf.layers.flatten({ name })),
    x,
  );
}

export function concat(f: LayerFactory, xs: SymbolicTensor[]): SymbolicTensor {
  return apply(
    f.named('concat', (name) => tf.layers.concatenate({ name, axis: -1 })),
    xs,
  );
}

export function input(f: LayerFactory, shape: number[], what: string): SymbolicTensor {
  return tf.input({ shape, name: `${f.network}/${what}` });
}

/**
 * One doubling of the side to `filters` channels. 'transpose': a 3x3 stride-2 transposed conv,
 * whose kernel overlaps itself unevenly (every other output pixel sums 4 taps, the others 1 or 2), so
 * its outputs carry a checkerboard unless training cancels it (Odena et al. 2016). 'resize': nearest
 * neighbour doubling, then a 3x3 conv, which treats every output pixel alike.
 */
function upsampleBlock(f: LayerFactory, h: SymbolicTensor, filters: number, upsample: ModelConfig['upsample']): SymbolicTensor {
  return upsample === 'resize' ? apply(f.conv(filters, 1), apply(f.upsample(), h)) : apply(f.deconv(filters), h);
}

/**
 * The PyTorch-VAE decoder from a latent(-like) vector: Dense to the flatten size, reshape, one
 * upsampling block per hidden dim (reversed), a last one at the first hidden dim, then a 3x3 conv
 * to the image channels and tanh (images live in [-1, 1]).
 */
export function deconvStack(
  f: LayerFactory,
  z: SymbolicTensor,
  config: Pick<ModelConfig, 'image_size' | 'hidden_dims' | 'in_channels' | 'upsample'>,
): SymbolicTensor {
  const side = bottleneckSide(config);
  const reversed = [...config.hidden_dims].reverse();
  let h = apply(f.dense(reversed[0] * side * side), z);
  h = apply(
    f.named('reshape', (name) => tf.layers.reshape({ name, targetShape: [side, side, reversed[0]] })),
    h,
  );
  for (const dim of [...reversed.slice(1), reversed[reversed.length - 1]]) {
    h = apply(f.leakyRelu(), apply(f.batchNorm(), upsampleBlock(f, h, dim, config.upsample)));
  }
  h = apply(f.conv(config.in_channels, 1), h);
  return apply(
    f.named('tanh', (name) => tf.layers.activation({ name, activation: 'tanh' })),
    h,
  );
}

export function model(f: LayerFactory, inputs: SymbolicTensor[], outputs: SymbolicTensor[]): tf.LayersModel {
  return tf.model({ name: f.network, inputs, outputs });
}

/** Networks' outputs as a list whatever their count. */
export function run(network: tf.LayersModel, inputs: tf.Tensor[], training: boolean): tf.Tensor[] {
  const out = network.apply(inputs.length === 1 ? inputs[0] : inputs, { training }) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** z = mu + eps * exp(logvar / 2), eps from the step's noise. */
export function reparameterize(mu: tf.Tensor2D, logvar: tf.Tensor2D, noise: StepNoise): tf.Tensor2D {
  return tf.tidy(() => tf.add(mu, tf.mul(noise.normal(mu.shape), tf.exp(tf.mul(logvar, 0.5)))) as tf.Tensor2D);
}

/**
 * Variables of these networks under their stable names (the layer path and weight name, e.g.
 * `encoder/conv0/kernel`): tfjs's own variable names get `_1` suffixes when a process builds a
 * second model, these never do. Order: network order, then layer order. `which` picks the trained
 * weights or the others (BatchNorm moving statistics).
 */
export function networkVariables(networks: readonly tf.LayersModel[], which: 'trainable' | 'nonTrainable'): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const network of networks) {
    const weights = (which === 'trainable' ? network.trainableWeights : network.nonTrainableWeights) as LayerVariable[];
    for (const weight of weights) {
      if (out.has(weight.originalName)) throw new ModelInputError(`duplicate variable name '${weight.originalName}'`);
      const variable = weight.read();
      if (!(variable instanceof tf.Variable)) throw new ModelInputError(`weight '${weight.originalName}' is not backed by a tf.Variable`);
      out.set(weight.originalName, variable);
    }
  }
  return out;
}

export function trainableVariables(networks: readonly tf.LayersModel[]): Map<string, tf.Variable> {
  return networkVariables(networks, 'trainable');
}

/**
 * Stable names of the biases that BatchNorm cancels: a layer whose every consumer is a BatchNorm
 * adds a per-channel constant that the batch mean (training mode) subtracts again, so the exact
 * gradient of its bias is zero. Computed, it is rounding noise whose sign depends on the order of
 * summation (how many workers, which ring), and Adam turns that noise into lr-sized steps: the
 * training step gives these biases exact zeros instead.
 */
export function biasesCancelledByBatchNorm(networks: readonly tf.LayersModel[]): Set<string> {
  const names = new Set<string>();
  for (const network of networks) {
    for (const layer of network.layers) {
      const consumers = layer.outboundNodes.map((node) => node.outboundLayer);
      if (consumers.length === 0 || !consumers.every((consumer) => consumer instanceof BatchNorm)) continue;
      for (const weight of layer.trainableWeights as LayerVariable[]) {
        if (weight.originalName === `${layer.name}/bias`) names.add(weight.originalName);
      }
    }
  }
  return names;
}

export function countParams(networks: readonly tf.LayersModel[]): number {
  let n = 0;
  // Weight shapes are always fully defined (Shape allows null only for symbolic batch axes).
  for (const network of networks) for (const w of network.trainableWeights) n += w.shape.reduce<number>((a, b) => a * (b ?? 0), 1);
  return n;
}

/** Seed keys of the networks, so that each draws its own weights. */
export const NetworkKey = { encoder: 1, decoder: 2, discriminator: 3 } as const;

export interface EncoderSpec {
  /** Widths of the dense heads on the flattened features (mu and logvar, plus any discrete logits). */
  heads: number[];
  /** Conditional models: label width; the label is embedded to one extra image channel. */
  labelWidth?: number;
}

/**
 * Encoder network: image (and label) in, one output per head. With a label, the image goes through
 * a 1x1 conv and the label through a Dense to H*W pixels reshaped to one channel, concatenated
 * (PyTorch-VAE's CVAE embedding).
 */
export function buildEncoder(config: ModelConfig, seed: number, spec: EncoderSpec): tf.LayersModel {
  const f = new LayerFactory('encoder', seed, NetworkKey.encoder);
  const side = config.image_size;
  const image = input(f, [side, side, config.in_channels], 'image');
  const inputs = [image];
  let x = image;
  if (spec.labelWidth) {
    const label = input(f, [spec.labelWidth], 'label');
    inputs.push(label);
    const embedded = apply(
      f.named('reshape', (name) => tf.layers.reshape({ name, targetShape: [side, side, 1] })),
      apply(f.dense(side * side), label),
    );
    x = concat(f, [apply(f.conv(config.in_channels, 1, 1), image), embedded]);
  }
  const features = flatten(f, convStack(f, x, config.hidden_dims).at(-1) ?? x);
  return model(
    f,
    inputs,
    spec.heads.map((units) => apply(f.dense(units), features)),
  );
}

/** Decoder network: a latent vector (and label, concatenated to it) in, an image in [-1, 1] out. */
export function buildDecoder(config: ModelConfig, seed: number, latentWidth: number, labelWidth = 0): tf.LayersModel {
  const f = new LayerFactory('decoder', seed, NetworkKey.decoder);
  const z = input(f, [latentWidth], 'z');
  const inputs = [z];
  let h = z;
  if (labelWidth) {
    const label = input(f, [labelWidth], 'label');
    inputs.push(label);
    h = concat(f, [z, label]);
  }
  return model(f, inputs, [deconvStack(f, h, config)]);
}
