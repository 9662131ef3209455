// MS-SSIM VAE (PyTorch-VAE's MSSIMVAE): the pixel MSE is replaced by 1 - MS-SSIM (5 scales,
// Gaussian window 11, sigma 1.5) on images in [-1, 1] (data range 2).
import { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { msSsim } from '../losses/ssim.ts';
import { VanillaVae } from './vae.ts';

/** Images are in [-1, 1]. */
const DATA_RANGE = 2;

export class MssimVae extends VanillaVae {
  override readonly kind: ModelName = 'mssim_vae';

  static override create(config: ModelConfig, seed: number): MssimVae {
    return new MssimVae(config, VanillaVae.gaussianNetworks(config, seed));
  }

  protected override reconstructionLoss(images: tf.Tensor4D, recon: tf.Tensor4D): tf.Scalar {
    return tf.sub(1, tf.mean(msSsim(recon, images, { dataRange: DATA_RANGE }))) as tf.Scalar;
  }
}
