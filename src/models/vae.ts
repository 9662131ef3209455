// Vanilla VAE (Kingma & Welling 2014), PyTorch-VAE's VanillaVAE: conv encoder to mu/logvar, deconv
// decoder, loss = MSE + kld_weight * KL. The other Gaussian variants extend this class and change
// only their inputs (CVAE), reconstruction term (MS-SSIM) or KL penalty (beta-VAE).
import { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { gaussianKl } from '../losses/kl.ts';
import { mse } from '../losses/reconstruction.ts';
import {
  encoderInput,
  type Encoding,
  type LossContext,
  type ModelBatch,
  type ModelLosses,
  type ParamGroup,
  type StepNoise,
  type VaeModel,
} from './base.ts';
import { buildDecoder, buildEncoder, countParams, reparameterize, run } from './blocks.ts';

/** Runs `fn` in a tidy and returns its losses, keeping only the returned scalars. */
export function tidyLosses(fn: () => ModelLosses): ModelLosses {
  const flat = tf.tidy(() => {
    const { terms, objectives } = fn();
    const out: Record<string, tf.Scalar> = {};
    for (const [k, v] of Object.entries(terms)) out[`t:${k}`] = v;
    for (const [k, v] of Object.entries(objectives)) out[`o:${k}`] = v;
    return out;
  });
  const losses: ModelLosses = { terms: {}, objectives: {} };
  for (const [k, v] of Object.entries(flat)) {
    if (k.startsWith('t:')) losses.terms[k.slice(2)] = v;
    else losses.objectives[k.slice(2)] = v;
  }
  return losses;
}

/** Rows [start, start + count) of `t`. */
function rows<T extends tf.Tensor>(t: T, start: number, count: number): T {
  return start === 0 && count === t.shape[0] ? t : (tf.slice(t, start, count) as T);
}

/**
 * `run` over rows [0, n) in batches of at most `batchSize`, each in its own tidy, the outputs
 * joined: the memory of a forward pass is that of one batch, whatever n is.
 */
function inBatches(n: number, batchSize: number, run: (start: number, count: number) => tf.Tensor4D): tf.Tensor4D {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const parts: tf.Tensor4D[] = [];
  try {
    for (let start = 0; start < n; start += batchSize) parts.push(tf.tidy(() => run(start, Math.min(batchSize, n - start))));
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
  } finally {
    if (parts.length > 1) tf.dispose(parts);
  }
}

/** The KL weight of a step: the configured number, or PyTorch-VAE's M_N (batch / dataset size). */
export function kldWeight(config: ModelConfig, ctx: LossContext): number {
  return config.kld_weight === 'M_N' ? ctx.minibatchFraction : config.kld_weight;
}

export class VanillaVae implements VaeModel {
  readonly kind: ModelName = 'vae';
  readonly labelWidth: number = 0;
  readonly gaussianLatent: boolean = true;

  constructor(
    readonly config: ModelConfig,
    readonly networks: Record<string, tf.LayersModel>,
  ) {}

  static create(config: ModelConfig, seed: number): VanillaVae {
    return new VanillaVae(config, VanillaVae.gaussianNetworks(config, seed));
  }

  /** Encoder with mu and logvar heads and a decoder from the latent (plus label, when given). */
  static gaussianNetworks(config: ModelConfig, seed: number, labelWidth = 0): Record<string, tf.LayersModel> {
    return {
      encoder: buildEncoder(config, seed, { heads: [config.latent_dim, config.latent_dim], labelWidth }),
      decoder: buildDecoder(config, seed, config.latent_dim, labelWidth),
    };
  }

  protected get encoder(): tf.LayersModel {
    return this.networks['encoder'];
  }

  protected get decoder(): tf.LayersModel {
    return this.networks['decoder'];
  }

  paramGroups(): ParamGroup[] {
    return [{ name: 'model', networks: ['encoder', 'decoder'], learningRate: 'lr' }];
  }

  /** Extra network inputs beside the image / latent: the label for conditional models. */
  protected conditioning(_labels: tf.Tensor2D | undefined): tf.Tensor[] {
    return [];
  }

  encode(images: tf.Tensor4D, labels: tf.Tensor2D | undefined, training: boolean): Encoding {
    const [mu, logvar] = run(this.encoder, [images, ...this.conditioning(labels)], training);
    return { mu: mu as tf.Tensor2D, logvar: logvar as tf.Tensor2D };
  }

  reparameterize(enc: Encoding, noise: StepNoise): tf.Tensor2D {
    return reparameterize(enc.mu, enc.logvar, noise);
  }

  /** The latent the decoder sees for the posterior mean (no sampling). */
  protected meanLatent(enc: Encoding): tf.Tensor2D {
    return enc.mu;
  }

  /** A prior draw of the decoder's input. */
  protected priorLatent(n: number, noise: StepNoise): tf.Tensor2D {
    return noise.normal([n, this.config.latent_dim]) as tf.Tensor2D;
  }

  decode(z: tf.Tensor2D, labels: tf.Tensor2D | undefined, training: boolean): tf.Tensor4D {
    return run(this.decoder, [z, ...this.conditioning(labels)], training)[0] as tf.Tensor4D;
  }

  sample(n: number, noise: StepNoise, labels?: tf.Tensor2D, batchSize = n): tf.Tensor4D {
    const z = tf.tidy(() => this.priorLatent(n, noise));
    try {
      return inBatches(n, batchSize, (start, count) => this.decode(rows(z, start, count), labels && rows(labels, start, count), false));
    } finally {
      z.dispose();
    }
  }

  reconstruct(images: tf.Tensor4D, labels?: tf.Tensor2D, batchSize = images.shape[0]): tf.Tensor4D {
    return inBatches(images.shape[0], batchSize, (start, count) => {
      const part = labels && rows(labels, start, count);
      return this.decode(this.meanLatent(this.encode(rows(images, start, count), part, false)), part, false);
    });
  }

  /** Pixel reconstruction term; PyTorch-VAE's MSE by default. */
  protected reconstructionLoss(images: tf.Tensor4D, recon: tf.Tensor4D): tf.Scalar {
    return mse(recon, images);
  }

  /** What the KL adds to the loss, plus any terms worth logging (capacity...). */
  protected klPenalty(kld: tf.Scalar, ctx: LossContext): { penalty: tf.Scalar; terms: Record<string, tf.Scalar> } {
    return { penalty: tf.mul(kld, kldWeight(this.config, ctx)), terms: {} };
  }

  losses(batch: ModelBatch, ctx: LossContext): ModelLosses {
    return tidyLosses(() => {
      const enc = this.encode(encoderInput(batch), batch.labels, ctx.training);
      const recon = this.decode(this.reparameterize(enc, ctx.noise), batch.labels, ctx.training);
      const reconstruction = this.reconstructionLoss(batch.images, recon);
      const kld = gaussianKl(enc.mu, enc.logvar);
      const { penalty, terms } = this.klPenalty(kld, ctx);
      const loss = tf.add(reconstruction, penalty) as tf.Scalar;
      return { terms: { loss, reconstruction, kld, ...terms }, objectives: { model: loss } };
    });
  }

  paramCount(): number {
    return countParams(Object.values(this.networks));
  }

  dispose(): void {
    for (const network of Object.values(this.networks)) network.dispose();
  }
}
