// What the page computes, on the project's own code: the model is built by createModel as
// `medvae` builds it and given the exported weights; samples come from drawImages (as `medvae
// sample`, from the prior or the checkpoint's latent density), scores from scoreImages (as `medvae
// score`), imputations from imputeImages' Metropolis-within-Gibbs (as `medvae impute`), images go
// through the data layer's crop, resize and normalisation (as the training images did).
import { tf } from '../../util/tf.ts';
import type { VaeModel } from '../../models/base.ts';
import { createModel } from '../../models/index.ts';
import { sampleLabels } from '../../models/sample-labels.ts';
import { drawImages, type DrawSource } from '../../models/latent-draw.ts';
import type { LatentDensity, LatentSampler } from '../../models/latent-density.ts';
import { transformSample, type Pixels } from '../../data/transforms.ts';
import type { LabelledImages } from '../../eval/images.ts';
import { scoreImages } from '../../restore/score.ts';
import { imputeImages } from '../../restore/impute.ts';
import { harmonicInpaint } from '../../restore/baselines.ts';
import { percentileOf, type NetworkWeights, type SiteBundle, type SiteData } from '../site-data.ts';

/** Seed of the page's scores and chains: the exporter scores the training images with the same one. */
const PAGE_SEED = 0;

function decodeWeights(w: NetworkWeights): tf.NamedTensorMap {
  const bytes = Uint8Array.from(atob(w.base64), (c) => c.charCodeAt(0));
  return tf.io.decodeWeights(bytes.buffer, w.specs as tf.io.WeightsManifestEntry[]);
}

/** The model of the run, built as the CLI builds it, with the exported encoder and decoder weights. */
export function buildModel(site: SiteBundle): VaeModel {
  const model = createModel(site.model, site.seed, site.labelWidth);
  for (const name of ['encoder', 'decoder'] as const) {
    const values = decodeWeights(site.weights[name]);
    try {
      // Matches every weight by its stable name and refuses a missing or misshapen one.
      model.networks[name]!.loadWeights(values, true);
    } finally {
      tf.dispose(values);
    }
  }
  return model;
}

/** Where `sampler`'s latents come from: the prior, or the site's learned density (which a fitted sampler needs). */
function drawSource(sampler: LatentSampler, density: LatentDensity | null): DrawSource {
  if (sampler === 'prior') return { sampler };
  if (!density) throw new Error(`this model has no fitted density to draw from (${sampler}): only the standard prior`);
  return { sampler, density };
}

export interface ImageAnalysis {
  reconstruction: Float32Array;
  negElbo: number;
  reconMse: number;
  /** Where -ELBO falls among the training images' (percent below). */
  percentile: number;
  reconMsePercentile: number;
}

export interface ImputationResult {
  imputed: Float32Array;
  /** The classical baseline `medvae impute` prints beside the model: harmonic (smooth) inpainting. */
  harmonic: Float32Array;
  acceptance: number;
}

export class Explorer {
  readonly size: number;
  readonly channels: 1 | 3;
  readonly per: number;

  constructor(
    readonly site: SiteData,
    readonly model: VaeModel,
    /** The checkpoint's learned latent density (the bundle's), null without one. */
    readonly density: LatentDensity | null,
  ) {
    this.size = site.model.image_size;
    this.channels = site.model.in_channels as 1 | 3;
    this.per = this.size * this.size * this.channels;
  }

  /** One-hot rows: every image of `label`, or classes in turn (as `medvae sample`). */
  private labelRows(n: number, label: number | undefined): Float32Array {
    return this.site.labelWidth > 0 ? sampleLabels(n, this.site.labelWidth, label) : new Float32Array(0);
  }

  /**
   * n synthetic images, [-1, 1], from `sampler` (by default the site's, `medvae sample`'s default):
   * at temperature 1, exactly `medvae sample --latent sampler --n n --seed seed [--label k]`.
   */
  async sample(n: number, seed: number, temperature: number, label?: number, sampler = this.site.sampling.sampler): Promise<Float32Array> {
    const labels = this.labelRows(n, label);
    const source = drawSource(sampler, this.density);
    return drawImages(this.model, { n, seed, labels, labelWidth: this.site.labelWidth, source, temperature });
  }

  /** RGBA pixels of any size -> the model's input, through the training data's crop, resize and normalisation. */
  prepare(rgba: Uint8ClampedArray, width: number, height: number): Float32Array {
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      rgb[i] = rgba[j]!;
      rgb[i + 1] = rgba[j + 1]!;
      rgb[i + 2] = rgba[j + 2]!;
    }
    const image: Pixels = { data: rgb, width, height, channels: 3 };
    const out = new Float32Array(this.per);
    const transform = {
      size: this.size,
      channels: this.channels,
      resize: this.site.resize,
      augment: { flip: false, rot90: false },
      seed: 0,
    };
    transformSample(image, transform, 0, 0, out, 0);
    return out;
  }

  private labelled(images: Float32Array, n: number, label: number | undefined): LabelledImages {
    const labelWidth = this.site.labelWidth;
    return {
      images,
      labels: this.labelRows(n, label),
      n,
      size: this.size,
      channels: this.channels,
      labelWidth,
      labelKind: labelWidth > 0 ? 'class' : 'none',
    };
  }

  /** Whether the decoder takes the encoder's mean as its whole input (not JointVAE's discrete part). */
  canInterpolate(): boolean {
    return this.model.gaussianLatent;
  }

  /**
   * `steps` decodes along the straight line between two images' posterior means (as `medvae
   * interpolate`); a conditional model encodes and decodes the whole strip with one class.
   */
  async interpolate(a: Float32Array, b: Float32Array, steps: number, label = 0): Promise<Float32Array> {
    const width = this.site.labelWidth;
    const labels = this.labelRows(steps, label);
    const pair = new Float32Array(2 * this.per);
    pair.set(a);
    pair.set(b, this.per);
    const strip = tf.tidy(() => {
      const cond = (n: number): tf.Tensor2D | undefined => (width > 0 ? tf.tensor2d(labels.subarray(0, n * width), [n, width]) : undefined);
      const { mu } = this.model.encode(tf.tensor4d(pair, [2, this.size, this.size, this.channels]), cond(2), false);
      const t = tf.reshape(tf.linspace(0, 1, steps), [steps, 1]);
      const z = tf.add(tf.mul(tf.slice(mu, [0, 0], [1, -1]), tf.sub(1, t)), tf.mul(tf.slice(mu, [1, 0], [1, -1]), t)) as tf.Tensor2D;
      return this.model.decode(z, cond(steps), false);
    });
    try {
      return (await strip.data()) as Float32Array;
    } finally {
      strip.dispose();
    }
  }

  /** Reconstruction and anomaly score of one prepared image, scored as the training images were at export. */
  async analyse(image: Float32Array, label?: number): Promise<ImageAnalysis> {
    const data = this.labelled(image, 1, label);
    const scores = await scoreImages(this.model, data, { sigma: this.site.decoderSigma, samples: 1, seed: PAGE_SEED, batch: 1 });
    const recon = tf.tidy(() => {
      const x = tf.tensor4d(image, [1, this.size, this.size, this.channels]);
      const cond = this.site.labelWidth > 0 ? tf.tensor2d(data.labels, [1, this.site.labelWidth]) : undefined;
      return this.model.reconstruct(x, cond);
    });
    let reconstruction: Float32Array;
    try {
      reconstruction = (await recon.data()) as Float32Array;
    } finally {
      recon.dispose();
    }
    const negElbo = scores.neg_elbo[0]!;
    const reconMse = scores.recon_mse[0]!;
    return {
      reconstruction,
      negElbo,
      reconMse,
      percentile: percentileOf(this.site.reference.negElbo, negElbo),
      reconMsePercentile: percentileOf(this.site.reference.reconMse, reconMse),
    };
  }

  /** Fills the masked pixels (`mask`: size x size, 1 = fill) by Metropolis-within-Gibbs, as `medvae impute`. */
  async impute(image: Float32Array, mask: Uint8Array, label?: number): Promise<ImputationResult> {
    const data = this.labelled(image, 1, label);
    const { iterations, chains } = this.site.imputation;
    const result = await imputeImages(this.model, data, mask, {
      method: 'mwg',
      iters: iterations,
      samples: chains,
      sigma: this.site.decoderSigma,
      seed: PAGE_SEED,
      batch: 1,
    });
    const harmonic = harmonicInpaint({ data: image, n: 1, size: this.size, channels: this.channels }, mask);
    return { imputed: result.mean, harmonic, acceptance: result.acceptance ?? 0 };
  }
}
