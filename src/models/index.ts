// Model registry: config.model.name -> variant. Weights are a pure function of the seed.
import type { ModelConfig, ModelName } from '../config/schema.ts';
import type { VaeModel } from './base.ts';
import { BetaVae } from './beta_vae.ts';
import { ConditionalVae } from './cvae.ts';
import { JointVae } from './joint_vae.ts';
import { MssimVae } from './mssim_vae.ts';
import { VaeGan } from './vae_gan.ts';
import { VanillaVae } from './vae.ts';

const FACTORIES: Record<ModelName, (config: ModelConfig, seed: number, labelWidth: number) => VaeModel> = {
  vae: (c, s) => VanillaVae.create(c, s),
  beta_vae: (c, s) => BetaVae.create(c, s),
  mssim_vae: (c, s) => MssimVae.create(c, s),
  cvae: (c, s, l) => ConditionalVae.create(c, s, l),
  joint_vae: (c, s) => JointVae.create(c, s),
  vae_gan: (c, s) => VaeGan.create(c, s),
};

/**
 * Builds the model `config.name` with weights drawn from `seed`. `labelWidth` is the dataset's
 * label width, used by the conditional VAE when model.num_classes is 0.
 */
export function createModel(config: ModelConfig, seed: number, labelWidth = 0): VaeModel {
  return FACTORIES[config.name](config, seed, labelWidth);
}
