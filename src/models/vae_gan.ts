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
// reconstruction (pixel MSE, for monitoring only) and gan.
import * as tf from '@tensorflow/tfjs';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { bceWithLogits } from '../losses/gan.ts';
import { gaussianKl } from '../losses/kl.ts';
import { mse } from '../losses/reconstruction.ts';
import type { LossContext, ModelBatch, ModelLosses, ParamGroup } from './base.ts';
import { convStack, flatten, input, LayerFactory, model, ModelConfigError, NetworkKey, run } from './blocks.ts';
import { kldWeight, tidyLosses, VanillaVae } from './vae.ts';

/** Discriminator: the encoder's conv stack, then a Dense to one logit; also outputs block `feature_layer`'s features. */
export function buildDiscriminator(config: ModelConfig, seed: number): tf.LayersModel {
  const blocks = config.hidden_dims.length;
  if (!Number.isInteger(config.feature_layer) || config.feature_layer < 1 || config.feature_layer > blocks) {
    throw new ModelConfigError(`model.feature_layer must be between 1 and ${blocks} (the number of model.hidden_dims), got ${config.feature_layer}`);
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
      { name: 'encoder', networks: ['encoder'] },
      { name: 'decoder', networks: ['decoder'] },
      { name: 'discriminator', networks: ['discriminator'] },
    ];
  }

  /**
   * With ctx.objective set, only what that objective needs is computed (the step runs one pass per
   * objective, in paramGroups order), and later passes take from ctx.scratch what earlier ones
   * computed as plain values: the decoder pass reuses the encoder pass's latents (so it draws no
   * noise and skips the encoder), the discriminator pass the decoder pass's images.
   */
  override losses(batch: ModelBatch, ctx: LossContext): ModelLosses {
    const wants = (group: string): boolean => ctx.objective === undefined || ctx.objective === group;
    const needLlike = wants('encoder') || wants('decoder');
    const needGan = wants('decoder') || wants('discriminator');
    const scratch = ctx.scratch;
    const remember = (key: string, t: tf.Tensor): void => {
      if (!scratch) return;
      scratch.get(key)?.dispose();
      scratch.set(key, tf.keep(t));
    };
    return tidyLosses(() => {
      const x = batch.images;
      const n = x.shape[0];
      const terms: Record<string, tf.Scalar> = {};
      const objectives: Record<string, tf.Scalar> = {};
      let z = scratch?.get('z') as tf.Tensor2D | undefined;
      let zPrior = scratch?.get('z_prior') as tf.Tensor2D | undefined;
      if (wants('encoder') || z === undefined || zPrior === undefined) {
        const enc = this.encode(x, batch.labels, ctx.training);
        z = this.reparameterize(enc, ctx.noise);
        zPrior = this.priorLatent(n, ctx.noise);
        remember('z', z);
        remember('z_prior', zPrior);
        if (wants('encoder')) terms['kld'] = gaussianKl(enc.mu, enc.logvar);
      }
      const reuseImages = ctx.objective === 'discriminator';
      const recon = (reuseImages ? (scratch?.get('recon') as tf.Tensor4D | undefined) : undefined) ?? this.decode(z, batch.labels, ctx.training);
      const discriminator = this.networks['discriminator'];
      const [featuresReal, logitReal] = run(discriminator, [x], ctx.training);
      const [featuresRecon, logitRecon] = run(discriminator, [recon], ctx.training);
      if (needLlike) {
        terms['dis_llike'] = mse(featuresRecon, featuresReal);
        terms['reconstruction'] = mse(recon, x);
      }
      if (wants('encoder')) {
        terms['loss'] = tf.add(tf.mul(terms['kld'], kldWeight(this.config, ctx)), terms['dis_llike']) as tf.Scalar;
        objectives['encoder'] = terms['loss'];
      }
      let logitPrior: tf.Tensor | undefined;
      if (needGan) {
        const prior = (reuseImages ? (scratch?.get('prior') as tf.Tensor4D | undefined) : undefined) ?? this.decode(zPrior, batch.labels, ctx.training);
        if (ctx.objective === 'decoder') {
          remember('recon', recon);
          remember('prior', prior);
        }
        [, logitPrior] = run(discriminator, [prior], ctx.training);
        const gan = tf.addN([bceWithLogits(logitReal, 1), bceWithLogits(logitRecon, 0), bceWithLogits(logitPrior, 0)]) as tf.Scalar;
        terms['gan'] = gan;
        objectives['discriminator'] = gan;
      }
      if (needLlike && needGan) {
        // The non-saturating form of -GAN (Goodfellow et al. 2014): the decoder asks the
        // discriminator to call its images real. Minimising -log(1 - D) instead stops the decoder
        // learning as soon as the discriminator wins, which it does within a few dozen steps.
        const fool = tf.add(bceWithLogits(logitRecon, 1), bceWithLogits(logitPrior!, 1));
        objectives['decoder'] = tf.add(tf.mul(terms['dis_llike'], this.config.recon_gamma), fool) as tf.Scalar;
      }
      return { terms, objectives };
    });
  }
}
