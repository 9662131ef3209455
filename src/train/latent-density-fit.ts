// The latent density a checkpoint carries (models/latent-density.ts): the encoder run over (a seeded
// subset of) the training split, un-augmented, and over the validation split, which picks the
// mixture's size. Forward passes only, in inference mode: training itself is unchanged. Fitted once
// per step, so an epoch's pictures and the checkpoint after them share one fit.
import type { ExperimentConfig } from '../config/schema.ts';
import { createLoader, type Loader } from '../data/loader.ts';
import { openDataset } from '../data/open.ts';
import { filterClasses } from '../data/class-filter.ts';
import type { DatasetSplit } from '../data/types.ts';
import type { VaeModel } from '../models/base.ts';
import { fitLatentDensity, type EncodedLatents, type LatentDensity } from '../models/latent-density.ts';
import { LatentCollector } from '../models/latent-encode.ts';
import { hashKeys, Stream } from '../util/rng.ts';

/** Training images encoded per fit: enough for a 128-dimensional covariance, few enough that EM takes seconds (about 5 s at 128 dimensions on a loaded CPU). */
const FIT_IMAGES = 1024;
/** Validation images that choose the mixture's size. */
const VALIDATION_IMAGES = 512;

export class LatentDensityFitter {
  private latest: LatentDensity | undefined;
  private validation: DatasetSplit | null | undefined;

  constructor(
    private readonly model: VaeModel,
    private readonly train: DatasetSplit,
    private readonly cfg: ExperimentConfig,
    /** Images per forward pass. */
    private readonly batchSize: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The density of the encoder's weights at `step` (fitted on the first call for a step). */
  async at(step: number): Promise<LatentDensity> {
    if (this.latest?.step === step) return this.latest;
    const validation = await this.validationSplit();
    const classCount = this.train.labelKind === 'class' ? this.model.labelWidth : 0;
    this.latest = fitLatentDensity(await this.encode(this.train, FIT_IMAGES), await this.encode(validation, VALIDATION_IMAGES), {
      step,
      seed: hashKeys(this.cfg.train.seed, Stream.sample, 3),
      classCount,
    });
    return this.latest;
  }

  async close(): Promise<void> {
    await this.validation?.close();
  }

  /** The validation split (opened once), or null when the dataset has none: the mixture then has one component. */
  private async validationSplit(): Promise<DatasetSplit | null> {
    if (this.validation !== undefined) return this.validation;
    const name = this.cfg.data.val_split;
    try {
      this.validation = await filterClasses(await openDataset(this.cfg.data, name), this.cfg.data.classes);
    } catch (e) {
      this.log(`latent density: no validation split '${name}' (${(e as Error).message}); the mixture keeps one component`);
      this.validation = null;
    }
    return this.validation;
  }

  /** The encoder's outputs over up to `limit` images of `split` (the first batches of a seeded order), un-augmented. */
  private async encode(split: DatasetSplit | null, limit: number): Promise<EncodedLatents> {
    const collector = new LatentCollector(this.model, split?.labelKind === 'class');
    if (!split) return collector.latents();
    const loader = plainLoader(split, this.cfg, this.batchSize);
    try {
      for await (const batch of loader.batches(0)) {
        await collector.add({ ...batch, n: Math.min(batch.n, limit - collector.n) });
        if (collector.n >= limit) break;
      }
    } finally {
      await loader.close();
    }
    return collector.latents();
  }
}

/** A loader that reads `split` in a seeded order, whole batches of `batchSize`, without augmentation. */
export function plainLoader(split: DatasetSplit, cfg: ExperimentConfig, batchSize: number): Loader {
  return createLoader({
    split,
    imageSize: cfg.model.image_size,
    channels: cfg.model.in_channels,
    resize: cfg.data.resize,
    augment: { flip: false, rot90: false },
    globalBatch: batchSize,
    shard: { seed: cfg.train.seed, rank: 0, worldSize: 1 },
    dropLast: false,
    threads: 0,
    prefetch: 1,
    strict: cfg.data.strict,
  });
}
