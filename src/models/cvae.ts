// Conditional VAE (Sohn et al. 2015; PyTorch-VAE's ConditionalVAE): the label (one-hot class or
// multi-hot findings, e.g. ChestMNIST's 14) is embedded to an extra image channel for the encoder
// and concatenated to z for the decoder, so samples can be drawn for chosen labels.
import type { tf } from '../util/tf.ts';
import type { ModelConfig, ModelName } from '../config/schema.ts';
import { ModelConfigError, ModelInputError } from './blocks.ts';
import { VanillaVae } from './vae.ts';

export class ConditionalVae extends VanillaVae {
  override readonly kind: ModelName = 'cvae';

  constructor(
    config: ModelConfig,
    networks: Record<string, tf.LayersModel>,
    override readonly labelWidth: number,
  ) {
    super(config, networks);
  }

  /** Label width: model.num_classes when set, else the dataset's. */
  static override create(config: ModelConfig, seed: number, datasetLabelWidth = 0): ConditionalVae {
    const labelWidth = config.num_classes || datasetLabelWidth;
    if (labelWidth <= 0) {
      throw new ModelConfigError('model.num_classes: the conditional VAE needs labels; set model.num_classes or use a dataset with labels');
    }
    return new ConditionalVae(config, VanillaVae.gaussianNetworks(config, seed, labelWidth), labelWidth);
  }

  protected override conditioning(labels: tf.Tensor2D | undefined): tf.Tensor[] {
    if (labels === undefined) throw new ModelInputError('the conditional VAE needs labels (N x num_classes) for every call');
    if (labels.shape[1] !== this.labelWidth) {
      throw new ModelInputError(`labels have width ${labels.shape[1]}, the conditional VAE was built for ${this.labelWidth}`);
    }
    return [labels];
  }
}
