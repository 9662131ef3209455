// What one training step of a model holds, from its config alone (no weights are built): the shape
// of every activation the forward pass makes per training image, and the trained parameters. The
// trainer sizes its micro-batches from these (src/train/micro-batch.ts) before the model exists;
// each entry mirrors a layer of blocks.ts, and test/unit/train.test.ts checks them against
// built models. A new variant adds its row to TRAITS.
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { bottleneckSide } from './blocks.ts';

export type FootprintNetwork = 'encoder' | 'decoder' | 'discriminator' | 'loss';

/** One layer's output, per training image. */
export interface ActivationShape {
  network: FootprintNetwork;
  /** The layer (block) it comes from: 'image', 'conv0', 'deconv2', 'output', 'ms-ssim'... */
  layer: string;
  height: number;
  width: number;
  channels: number;
  /**
   * Images of this shape per training image, all in ONE tensor: the VAE-GAN decodes posterior and
   * prior latents in one batch (2) and its discriminator sees real, reconstructed and prior images
   * in one batch (3).
   */
  passes: number;
  /**
   * Tensors of this shape the forward pass keeps here (a conv block: conv, bias add, BatchNorm,
   * LeakyReLU = 4); the backward pass adds their gradients on top.
   */
  tensors: number;
}

export interface TrainingFootprint {
  activations: ActivationShape[];
  /** Trained parameters (as model.paramCount() counts them). */
  parameters: number;
}

/** What sets a variant's footprint apart from the Vanilla VAE's. */
interface Traits {
  /** Images through the decoder per training image. */
  decoderPasses: number;
  /** Images through a discriminator per training image (0: none). */
  discriminatorPasses: number;
  /** The label enters the encoder as an extra image channel and the decoder beside z. */
  conditional: boolean;
  /** Extra latent width beside latent_dim (JointVAE's categorical codes). */
  extraLatent: (c: ModelConfig) => number;
  /** Full-size image tensors (of in_channels) the reconstruction loss makes per image. */
  lossTensors: number;
}

const PLAIN: Traits = { decoderPasses: 1, discriminatorPasses: 0, conditional: false, extraLatent: () => 0, lossTensors: 4 };

const TRAITS: Record<ModelName, Traits> = {
  vae: PLAIN,
  beta_vae: PLAIN,
  // MS-SSIM: about 30 image-sized maps per scale (channels folded, squares, five blurs of two
  // passes, the luminance and contrast maps), over a pyramid that adds a third.
  mssim_vae: { ...PLAIN, lossTensors: 40 },
  cvae: { ...PLAIN, conditional: true },
  joint_vae: { ...PLAIN, extraLatent: (c) => c.num_discrete * c.categorical_dim },
  // Pixel and feature likelihoods, BCE on three logit sets: a few image-sized tensors more.
  vae_gan: { ...PLAIN, decoderPasses: 2, discriminatorPasses: 3, lossTensors: 6 },
};

/** Conv/deconv blocks keep conv output, bias add, BatchNorm and LeakyReLU. */
const BLOCK_TENSORS = 4;

function convParams(cin: number, cout: number, kernel = 3): number {
  return kernel * kernel * cin * cout + cout;
}

function denseParams(inputs: number, units: number): number {
  return inputs * units + units;
}

/**
 * The footprint of `config.name` at `config.image_size`. `labelWidth` is the conditional VAE's
 * label width (model.num_classes, else the dataset's); other variants ignore it.
 */
export function trainingFootprint(config: ModelConfig, labelWidth = config.num_classes): TrainingFootprint {
  const t = TRAITS[config.name];
  const { image_size: size, hidden_dims: dims, in_channels: channels } = config;
  const bottleneck = bottleneckSide(config);
  const last = dims[dims.length - 1]!;
  const label = t.conditional ? labelWidth : 0;
  const activations: ActivationShape[] = [];
  let parameters = 0;
  const add = (network: FootprintNetwork, layer: string, side: number, c: number, passes: number, tensors: number): void => {
    activations.push({ network, layer, height: side, width: side, channels: c, passes, tensors });
  };

  /** The shared conv stack (blocks.ts convStack): stride-2 conv + BatchNorm + LeakyReLU per hidden dim. */
  const convStack = (network: FootprintNetwork, cin: number, passes: number): void => {
    dims.forEach((d, i) => {
      add(network, `conv${i}`, size / 2 ** (i + 1), d, passes, BLOCK_TENSORS);
      parameters += convParams(i === 0 ? cin : dims[i - 1]!, d) + 2 * d;
    });
  };

  // Encoder: the image (with the conditional VAE's 1x1 conv and label channel), the conv stack, dense heads.
  add('encoder', 'image', size, channels, 1, 1);
  let encoderChannels = channels;
  if (label > 0) {
    add('encoder', 'label-channel', size, channels + 1, 1, 3);
    parameters += convParams(channels, channels, 1) + denseParams(label, size * size);
    encoderChannels = channels + 1;
  }
  convStack('encoder', encoderChannels, 1);
  const extra = t.extraLatent(config);
  const flat = bottleneck * bottleneck * last;
  parameters += 2 * denseParams(flat, config.latent_dim) + (extra > 0 ? denseParams(flat, extra) : 0);

  // Decoder (blocks.ts deconvStack): dense to the bottleneck, an upsampling block per hidden dim
  // after the last, one more at full size, the output conv and tanh. A resize block also keeps its
  // doubled input (what its conv reads); its conv has the transposed conv's parameters.
  const p = t.decoderPasses;
  const reversed = [...dims].reverse();
  add('decoder', 'dense', bottleneck, last, p, 2);
  parameters += denseParams(config.latent_dim + extra + label, flat);
  const widths = [...reversed.slice(1), reversed[reversed.length - 1]!];
  widths.forEach((d, i) => {
    const side = bottleneck * 2 ** (i + 1);
    if (config.upsample === 'resize') add('decoder', `upsample${i}`, side, i === 0 ? last : widths[i - 1]!, p, 1);
    add('decoder', `deconv${i}`, side, d, p, BLOCK_TENSORS);
    parameters += convParams(i === 0 ? last : widths[i - 1]!, d) + 2 * d;
  });
  add('decoder', 'output', size, channels, p, 3);
  parameters += convParams(dims[0]!, channels);

  if (t.discriminatorPasses > 0) {
    add('discriminator', 'image', size, channels, t.discriminatorPasses, 1);
    convStack('discriminator', channels, t.discriminatorPasses);
    parameters += denseParams(flat, 1);
  }
  add('loss', 'reconstruction', size, channels, 1, t.lossTensors);
  return { activations, parameters };
}
