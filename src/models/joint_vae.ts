// JointVAE (Dupont 2018; PyTorch-VAE's JointVAE): a continuous Gaussian latent plus num_discrete
// categorical latents of categorical_dim classes, relaxed with Gumbel-softmax. Each part's KL is
// pulled towards its own linearly growing capacity, gamma * |KL - C|; the loss is
// alpha * reconstruction + kld_weight * capacity terms, as in PyTorch-VAE. Unlike PyTorch-VAE, whose
// temperature never changes, the temperature really anneals: t0 * exp(-anneal_rate * step), in
// stages of anneal_steps, floored at min_temperature.
import { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { capacityLoss, linearCapacity } from '../losses/capacity.ts';
import { annealedTemperature, gumbelSoftmax } from '../losses/gumbel.ts';
import { categoricalKl, gaussianKl } from '../losses/kl.ts';
import { mse } from '../losses/reconstruction.ts';
import { encoderInput, type Encoding, type LossContext, type ModelBatch, type ModelLosses, type StepNoise } from './base.ts';
import { buildDecoder, buildEncoder, ModelInputError, reparameterize, run } from './blocks.ts';
import { kldWeight, tidyLosses, VanillaVae } from './vae.ts';

export class JointVae extends VanillaVae {
  override readonly kind: ModelName = 'joint_vae';
  override readonly gaussianLatent = false;
  /** Temperature of the last training step's relaxation; reparameterize() uses it. */
  temperature: number;

  constructor(config: ModelConfig, networks: Record<string, tf.LayersModel>) {
    super(config, networks);
    this.temperature = config.temperature;
  }

  static override create(config: ModelConfig, seed: number): JointVae {
    const discrete = config.num_discrete * config.categorical_dim;
    return new JointVae(config, {
      encoder: buildEncoder(config, seed, { heads: [config.latent_dim, config.latent_dim, discrete] }),
      decoder: buildDecoder(config, seed, config.latent_dim + discrete),
    });
  }

  temperatureAt(step: number): number {
    const c = this.config;
    return annealedTemperature(step, c.temperature, c.anneal_rate, c.anneal_steps, c.min_temperature);
  }

  override encode(images: tf.Tensor4D, labels: tf.Tensor2D | undefined, training: boolean): Encoding {
    const [mu, logvar, logits] = run(this.encoder, [images, ...this.conditioning(labels)], training);
    const k = this.config.categorical_dim;
    // Slices, not tf.split: split's gradient fails when only some of its outputs are used.
    const discreteLogits = Array.from({ length: this.config.num_discrete }, (_, i) => tf.slice(logits, [0, i * k], [-1, k]) as tf.Tensor2D);
    return { mu: mu as tf.Tensor2D, logvar: logvar as tf.Tensor2D, discreteLogits };
  }

  private logitsOf(enc: Encoding): tf.Tensor2D[] {
    if (!enc.discreteLogits) throw new ModelInputError('a JointVAE encoding needs discreteLogits');
    return enc.discreteLogits;
  }

  override reparameterize(enc: Encoding, noise: StepNoise): tf.Tensor2D {
    return tf.tidy(() => {
      const continuous = reparameterize(enc.mu, enc.logvar, noise);
      const discrete = this.logitsOf(enc).map((l) => gumbelSoftmax(l, noise.uniform(l.shape), this.temperature));
      return tf.concat([continuous, ...discrete], 1);
    });
  }

  /** Posterior mean of the continuous part, the most likely category of each discrete one. */
  protected override meanLatent(enc: Encoding): tf.Tensor2D {
    const k = this.config.categorical_dim;
    return tf.concat([enc.mu, ...this.logitsOf(enc).map((l) => tf.oneHot(tf.argMax(l, 1), k).toFloat() as tf.Tensor2D)], 1);
  }

  /** Standard normal continuous part, uniformly drawn category for each discrete variable. */
  protected override priorLatent(n: number, noise: StepNoise): tf.Tensor2D {
    const c = this.config;
    const continuous = noise.normal([n, c.latent_dim]) as tf.Tensor2D;
    const u = noise.uniform([n, c.num_discrete]);
    const categories = tf.minimum(tf.floor(tf.mul(u, c.categorical_dim)), c.categorical_dim - 1).toInt();
    const oneHots = tf.unstack(categories, 1).map((idx) => tf.oneHot(idx as tf.Tensor1D, c.categorical_dim).toFloat());
    return tf.concat([continuous, ...oneHots], 1) as tf.Tensor2D;
  }

  override losses(batch: ModelBatch, ctx: LossContext): ModelLosses {
    const c = this.config;
    this.temperature = this.temperatureAt(ctx.step);
    return tidyLosses(() => {
      const enc = this.encode(encoderInput(batch), batch.labels, ctx.training);
      const recon = this.decode(this.reparameterize(enc, ctx.noise), batch.labels, ctx.training);
      const reconstruction = mse(recon, batch.images);
      const kld = gaussianKl(enc.mu, enc.logvar);
      const kldDiscrete = tf.addN(this.logitsOf(enc).map((l) => categoricalKl(l))) as tf.Scalar;
      const [contMin, contMax, contGamma, contIters] = c.cont_capacity;
      const [discMin, discMaxConfigured, discGamma, discIters] = c.disc_capacity;
      // A discrete KL cannot exceed log K per variable: a larger target would be unreachable.
      const discMax = Math.min(discMaxConfigured, c.num_discrete * Math.log(c.categorical_dim));
      const contCapacity = linearCapacity(ctx.step, contMin, contMax, contIters);
      const discCapacity = linearCapacity(ctx.step, discMin, discMax, discIters);
      const capacityTerm = tf.add(capacityLoss(kld, contCapacity, contGamma), capacityLoss(kldDiscrete, discCapacity, discGamma));
      const loss = tf.add(tf.mul(reconstruction, c.alpha), tf.mul(capacityTerm, kldWeight(c, ctx))) as tf.Scalar;
      return {
        terms: {
          loss,
          reconstruction,
          kld,
          kld_discrete: kldDiscrete,
          capacity_continuous: tf.scalar(contCapacity),
          capacity_discrete: tf.scalar(discCapacity),
          temperature: tf.scalar(this.temperature),
        },
        objectives: { model: loss },
      };
    });
  }
}
