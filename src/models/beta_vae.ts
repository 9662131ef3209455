// beta-VAE, PyTorch-VAE's BetaVAE: 'H' (Higgins et al. 2017) weighs the KL by beta; 'B' (Burgess et
// al. 2018) pulls the KL towards a capacity C that grows linearly to max_capacity over
// capacity_max_iter steps: gamma * |KL - C|. Both keep PyTorch-VAE's extra kld_weight factor.
import { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { capacityLoss, linearCapacity } from '../losses/capacity.ts';
import type { LossContext } from './base.ts';
import { kldWeight, VanillaVae } from './vae.ts';

export class BetaVae extends VanillaVae {
  override readonly kind: ModelName = 'beta_vae';

  static override create(config: ModelConfig, seed: number): BetaVae {
    return new BetaVae(config, VanillaVae.gaussianNetworks(config, seed));
  }

  protected override klPenalty(kld: tf.Scalar, ctx: LossContext): { penalty: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const weight = kldWeight(this.config, ctx);
    if (this.config.loss_type === 'H') return { penalty: tf.mul(kld, this.config.beta * weight), terms: {} };
    const capacity = linearCapacity(ctx.step, 0, this.config.max_capacity, this.config.capacity_max_iter);
    return {
      penalty: capacityLoss(kld, capacity, this.config.gamma * weight),
      terms: { capacity: tf.scalar(capacity) },
    };
  }
}
