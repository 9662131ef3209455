// VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction error is measured in the feature space
// of a GAN discriminator ("learned similarity") instead of pixels. Three networks, three
// objectives, each minimised by its own optimizer over its own network only:
//   encoder:       kld_weight * KL + Dis_llike
//   decoder:       recon_gamma * Dis_llike + BCE(D(recon), real) + BCE(D(prior sample), real)
//   discriminator: GAN
// Dis_llike is the Gaussian log-likelihood of the reconstruction's layer-`feature_layer` features
// around the input's, i.e. their MSE up to constants; GAN is the discriminator's binary
// cross-entropy on the real batch (label 1), its reconstructions (0) and decoded prior samples (0).
// The KL carries kld_weight as in every other model here, keeping its scale comparable to a mean
// squared error. Logged terms: loss (the encoder's objective, the VAE part), kld, dis_llike,
// reconstruction (pixel MSE, for monitoring only), gan and its parts (gan_real, gan_fake, and
// gan_prior: the discriminator's loss on decoded prior draws alone).
import { tf } from '../util/tf.ts';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { bceWithLogits } from '../losses/gan.ts';
import { gaussianKl } from '../losses/kl.ts';
import { gaussianNllPerImage, mse } from '../losses/reconstruction.ts';
import { encoderInput, type LossContext, type ModelBatch, type ModelLosses, type ParamGroup } from './base.ts';
import { convStack, flatten, input, LayerFactory, model, ModelConfigError, NetworkKey, run } from './blocks.ts';
import { kldWeight, tidyLosses, VanillaVae } from './vae.ts';

/** Discriminator: the encoder's conv stack, then a Dense to one logit; also outputs block `feature_layer`'s features. */
export function buildDiscriminator(config: ModelConfig, seed: number): tf.LayersModel {
  const blocks = config.hidden_dims.length;
  if (!Number.isInteger(config.feature_layer) || config.feature_layer < 1 || config.feature_layer > blocks) {
    throw new ModelConfigError(
      `model.feature_layer must be between 1 and ${blocks} (the number of model.hidden_dims), got ${config.feature_layer}`,
    );
  }
  const f = new LayerFactory('discriminator', seed, NetworkKey.discriminator);
  const image = input(f, [config.image_size, config.image_size, config.in_channels], 'image');
  const outputs = convStack(f, image, config.hidden_dims);
  const features = outputs[config.feature_layer - 1];
  const logit = f.dense(1).apply(flatten(f, outputs[blocks - 1])) as SymbolicTensor;
  return model(f, [image], [features, logit]);
}

export class VaeGan extends VanillaVae {
  override readonly kind: ModelName = 'vae_gan';

  static override create(config: ModelConfig, seed: number): VaeGan {
    return new VaeGan(config, {
      ...VanillaVae.gaussianNetworks(config, seed),
      discriminator: buildDiscriminator(config, seed),
    });
  }

  override paramGroups(): ParamGroup[] {
    return [
      { name: 'encoder', networks: ['encoder'], learningRate: 'lr' },
      { name: 'decoder', networks: ['decoder'], learningRate: 'lr' },
      { name: 'discriminator', networks: ['discriminator'], learningRate: 'lr_discriminator' },
    ];
  }

  /** Every term and all three objectives from one forward pass (the step differentiates each w.r.t. its own network). */
  override losses(batch: ModelBatch, ctx: LossContext): ModelLosses {
    return tidyLosses(() => {
      const x = batch.images;
      const n = x.shape[0];
      // The discriminator's real images are the clean targets; only the encoder sees `inputs`.
      const enc = this.encode(encoderInput(batch), batch.labels, ctx.training);
      const z = this.reparameterize(enc, ctx.noise);
      const zPrior = this.priorLatent(n, ctx.noise);
      // One decoder pass over posterior and prior latents, and one discriminator pass over real,
      // reconstructed and prior images: BatchNorm then normalises all of them with the same
      // statistics, so a batch-wide shift of colour or contrast in the fakes stays visible to the
      // features and to the discriminator, and real and fake features are on one scale.
      const decoded = this.decode(tf.concat([z, zPrior]), undefined, ctx.training);
      const recon = tf.slice(decoded, [0], [n]) as tf.Tensor4D;
      const [features, logits] = run(this.networks['discriminator'], [tf.concat([x, decoded])], ctx.training);
      const part = (t: tf.Tensor, i: number): tf.Tensor => tf.slice(t, [i * n], [n]);
      const [featuresReal, featuresRecon] = [part(features, 0), part(features, 1)];
      const [logitReal, logitRecon, logitPrior] = [part(logits, 0), part(logits, 1), part(logits, 2)];

      const kld = gaussianKl(enc.mu, enc.logvar);
      const c = this.config;
      const featureNll = gaussianNllPerImage(featuresRecon, featuresReal);
      const disLlike =
        c.pixel_weight > 0 ? (tf.add(featureNll, tf.mul(gaussianNllPerImage(recon, x), c.pixel_weight)) as tf.Scalar) : featureNll;
      const loss = tf.add(tf.mul(kld, kldWeight(c, ctx)), disLlike) as tf.Scalar;
      const realLoss = bceWithLogits(logitReal, 1);
      const priorLoss = bceWithLogits(logitPrior, 0);
      const fakeLoss = tf.div(tf.add(bceWithLogits(logitRecon, 0), priorLoss), 2) as tf.Scalar;
      const gan = tf.add(realLoss, tf.mul(fakeLoss, 2)) as tf.Scalar;
      // The non-saturating form of -GAN (Goodfellow et al. 2014): the decoder asks the
      // discriminator to call its images real. Minimising -log(1 - D) instead stops the decoder
      // learning as soon as the discriminator wins, which it does within a few dozen steps.
      const fool = tf.add(bceWithLogits(logitRecon, 1), bceWithLogits(logitPrior, 1));
      const [discriminator, decoder] = this.gates(realLoss, fakeLoss);
      return {
        terms: {
          loss,
          kld,
          dis_llike: disLlike,
          reconstruction: mse(recon, x),
          gan,
          gan_real: realLoss,
          gan_fake: fakeLoss,
          gan_prior: priorLoss,
          train_discriminator: discriminator,
          train_adversarial: decoder,
        },
        objectives: {
          encoder: loss,
          decoder: tf.add(tf.mul(disLlike, c.recon_gamma), tf.mul(fool, decoder)) as tf.Scalar,
          discriminator: tf.mul(gan, discriminator) as tf.Scalar,
        },
      };
    });
  }

  /**
   * Which adversarial objectives this step trains (1) or sits out (0), from the discriminator's
   * losses on real and fake images: a discriminator far ahead stops training, one far behind stops
   * the decoder chasing it; if both would stop, both train. gan_margin 0 trains both always.
   * Computed on the device, as 0/1 scalars the objectives are multiplied by: the step never waits
   * for the losses to come back to the host (a GPU backend cannot even read them synchronously).
   */
  private gates(realLoss: tf.Scalar, fakeLoss: tf.Scalar): [discriminator: tf.Scalar, decoder: tf.Scalar] {
    const { gan_equilibrium: equilibrium, gan_margin: margin } = this.config;
    if (margin <= 0) return [tf.scalar(1), tf.scalar(1)];
    return asConstant(() => {
      // 1 where some loss is below equilibrium - margin (the discriminator is far ahead), else 0;
      // a NaN loss compares false, as it did on the host.
      const below = (l: tf.Scalar): tf.Tensor => tf.cast(lessThan(l, equilibrium - margin), 'float32');
      const above = (l: tf.Scalar): tf.Tensor => tf.cast(greaterThan(l, equilibrium + margin), 'float32');
      const ahead = tf.maximum(below(realLoss), below(fakeLoss));
      const behind = tf.maximum(above(realLoss), above(fakeLoss));
      // discriminator = !ahead || behind, decoder = !behind || ahead: both 1 when both would stop.
      return tf.stack([tf.sub(1, tf.mul(ahead, tf.sub(1, behind))), tf.sub(1, tf.mul(behind, tf.sub(1, ahead)))]);
    }).unstack() as [tf.Scalar, tf.Scalar];
  }
}

/**
 * The tensor `compute` makes, as a constant to differentiation (a stop-gradient): computed inside
 * a custom-gradient op that takes no inputs, so the tape records one node that no variable leads
 * to, and no gradient flows through it (tf.less has none), as through the numbers these gates were
 * when they were read back to the host.
 */
function asConstant(compute: () => tf.Tensor): tf.Tensor {
  return tf.customGrad(() => ({ value: compute(), gradFunc: () => [] }))();
}

/**
 * l < t for a float32 `l` and a number `t`, exactly as JavaScript compares them, though the device
 * compares with t rounded to float32: when t rounds down, l < t is l <= round(t).
 */
function lessThan(l: tf.Tensor, t: number): tf.Tensor {
  const t32 = Math.fround(t);
  return t32 < t ? tf.lessEqual(l, t32) : tf.less(l, t32);
}

/** l > t for a float32 `l` and a number `t`, exactly (see lessThan): when t rounds up, l > t is l >= round(t). */
function greaterThan(l: tf.Tensor, t: number): tf.Tensor {
  const t32 = Math.fround(t);
  return t32 > t ? tf.greaterEqual(l, t32) : tf.greater(l, t32);
}
