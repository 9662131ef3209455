// MS-SSIM VAE (PyTorch-VAE's MSSIMVAE): the pixel MSE is replaced by 1 - MS-SSIM (5 scales,
// Gaussian window 11, sigma 1.5) on images in [-1, 1] (data range 2), optionally mixed with the
// pixels' mean absolute error (model.l1_fraction, Zhao et al. 2017).
import { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { meanAbsoluteError } from '../losses/reconstruction.ts';
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
    const dissimilarity = tf.sub(1, tf.mean(msSsim(recon, images, { dataRange: DATA_RANGE }))) as tf.Scalar;
    const l1 = this.config.l1_fraction;
    if (l1 === 0) return dissimilarity;
    // Absolute errors on the [0, 1] scale (half those on [-1, 1]), as Zhao et al. mix them.
    const pixelError = tf.div(meanAbsoluteError(recon, images), DATA_RANGE);
    return tf.add(tf.mul(dissimilarity, 1 - l1), tf.mul(pixelError, l1)) as tf.Scalar;
  }
}
