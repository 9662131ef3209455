// The encoder's outputs over a set of images, gathered batch by batch, for the latent density
// (./latent-density.ts): posterior means and variances, the class of each image, and the most
// likely category of each categorical latent.
import { tf } from '../util/tf.ts';
import type { VaeModel } from './base.ts';
import { classOfRow, type EncodedLatents } from './latent-density.ts';

/** Images as the model takes them: NHWC in [-1, 1] and label rows (n x labelWidth). */
export interface ImageBatch {
  images: Float32Array;
  labels: Float32Array;
  n: number;
  size: number;
  channels: number;
  labelWidth: number;
}

export class LatentCollector {
  private readonly means: Float32Array[] = [];
  private readonly variances: Float32Array[] = [];
  private readonly classes: number[] = [];
  private readonly categories: number[] = [];
  private categoryCounts: number[] = [];

  /** `classLabels`: the label rows are one-hot classes (a per-class fit), not findings. */
  constructor(
    private readonly model: VaeModel,
    private readonly classLabels: boolean,
  ) {}

  get n(): number {
    return this.classes.length;
  }

  /** Encodes a batch (one forward pass, in inference mode) and keeps its outputs. */
  async add(batch: ImageBatch): Promise<void> {
    const { n, size, channels, labelWidth } = batch;
    const conditional = this.model.labelWidth > 0 && labelWidth > 0;
    const outputs = tf.tidy(() => {
      const images = tf.tensor4d(batch.images.subarray(0, n * size * size * channels), [n, size, size, channels]);
      const labels = conditional ? tf.tensor2d(batch.labels.subarray(0, n * labelWidth), [n, labelWidth]) : undefined;
      const enc = this.model.encode(images, labels, false);
      const logits = enc.discreteLogits ?? [];
      this.categoryCounts = logits.map((l) => l.shape[1]);
      const categories = logits.map((l) => tf.argMax(l, 1));
      return {
        moments: tf.concat([enc.mu, tf.exp(enc.logvar)], 1),
        categories: categories.length > 0 ? tf.stack(categories, 1) : undefined,
      };
    });
    try {
      const d = this.model.config.latent_dim;
      const moments = (await outputs.moments.data()) as Float32Array;
      for (let i = 0; i < n; i++) {
        this.means.push(moments.slice(2 * i * d, (2 * i + 1) * d));
        this.variances.push(moments.slice((2 * i + 1) * d, (2 * i + 2) * d));
        this.classes.push(conditional && this.classLabels ? classOfRow(batch.labels, i * labelWidth, labelWidth) : -1);
      }
      if (outputs.categories) {
        this.categories.push(...(await outputs.categories.data()));
      }
    } finally {
      tf.dispose(outputs);
    }
  }

  latents(): EncodedLatents {
    const d = this.model.config.latent_dim;
    const join = (rows: Float32Array[]): Float32Array => {
      const out = new Float32Array(rows.length * d);
      rows.forEach((row, i) => out.set(row, i * d));
      return out;
    };
    return {
      n: this.n,
      dim: d,
      means: join(this.means),
      variances: join(this.variances),
      classes: Int32Array.from(this.classes),
      categories: Int32Array.from(this.categories),
      categoryCounts: this.categoryCounts,
    };
  }
}
