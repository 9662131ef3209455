// The one interface every model variant implements (one file per variant in this folder).
// A model owns its networks (tf.LayersModel each, so a checkpoint is plain TF.js LayersModel
// format) and says how its losses split into objectives, one per optimizer group.
import type { tf } from '../util/tf.ts';
import type { ModelConfig, TrainConfig } from '../config/schema.ts';
import type { StepNoise } from '../util/rng.ts';

export type { StepNoise };

/** A batch as the model sees it: images NHWC in [-1, 1], labels one-/multi-hot (N x L) when the dataset has them. */
export interface ModelBatch {
  /** What the model reconstructs (and, without `inputs`, what its encoder reads). */
  images: tf.Tensor4D;
  /** What the encoder reads when it is not `images`: a corrupted copy under the denoising criterion (train.corrupt). */
  inputs?: tf.Tensor4D;
  labels?: tf.Tensor2D;
}

/** The images a model's encoder reads in its losses: `inputs` when given, else the targets themselves. */
export function encoderInput(batch: ModelBatch): tf.Tensor4D {
  return batch.inputs ?? batch.images;
}

/** Where training stands, for schedules inside losses (capacity annealing, Gumbel temperature, M_N). */
export interface LossContext {
  /** Global optimizer step, 0-based. */
  step: number;
  /** Batch size / dataset size: PyTorch-VAE's M_N, used when kld_weight is 'M_N'. */
  minibatchFraction: number;
  noise: StepNoise;
  /** True in training: BatchNorm uses batch statistics and updates its moving averages. */
  training: boolean;
}

/**
 * Named scalars. `terms` are for logging (reconstruction, kld, ...); `objectives` hold one scalar
 * per optimizer group (see paramGroups) that the trainer differentiates w.r.t. that group's variables.
 */
// A type, not an interface, so that it is a tf.TensorContainer (tf.tidy may return it).
export type ModelLosses = {
  terms: Record<string, tf.Scalar>;
  objectives: Record<string, tf.Scalar>;
};

/** One optimizer's worth of parameters: the networks it updates and the train.* key that sets its learning rate. */
export interface ParamGroup {
  name: string;
  networks: string[];
  learningRate: Extract<keyof TrainConfig, 'lr' | 'lr_discriminator'>;
}

export interface Encoding {
  mu: tf.Tensor2D;
  logvar: tf.Tensor2D;
  /** JointVAE: the logits of each discrete latent, N x categorical_dim, one per discrete variable. */
  discreteLogits?: tf.Tensor2D[];
}

export interface VaeModel {
  readonly kind: ModelConfig['name'];
  readonly config: ModelConfig;
  /** Width of the label every call takes (the conditional model); 0 when the model takes no labels. */
  readonly labelWidth: number;
  /** Whether the decoder takes exactly the Gaussian latent the encoder gives (JointVAE's also has a discrete part). */
  readonly gaussianLatent: boolean;
  /** encoder, decoder and (VAE-GAN) discriminator, each with its own variables. */
  readonly networks: Record<string, tf.LayersModel>;
  paramGroups(): ParamGroup[];
  encode(images: tf.Tensor4D, labels: tf.Tensor2D | undefined, training: boolean): Encoding;
  reparameterize(enc: Encoding, noise: StepNoise): tf.Tensor2D;
  decode(z: tf.Tensor2D, labels: tf.Tensor2D | undefined, training: boolean): tf.Tensor4D;
  /**
   * n images from the prior (labels required for the conditional model), decoded `batchSize` at a
   * time (all at once by default): the draw is the same whatever the batch size.
   */
  sample(n: number, noise: StepNoise, labels?: tf.Tensor2D, batchSize?: number): tf.Tensor4D;
  /**
   * Encode and decode with the posterior mean (no sampling noise): what users compare to inputs;
   * `batchSize` images at a time (all at once by default).
   */
  reconstruct(images: tf.Tensor4D, labels?: tf.Tensor2D, batchSize?: number): tf.Tensor4D;
  losses(batch: ModelBatch, ctx: LossContext): ModelLosses;
  /** Number of trainable parameters over all networks. */
  paramCount(): number;
  dispose(): void;
}
