// The images a restoration command works on: a split of the run's dataset (or of --data), all of
// it or a seeded subset of n (the same choice as `medvae eval`), read chunk by chunk as the model
// sees them (resized, normalised, no augmentation).
import type { ExperimentConfig } from '../config/schema.ts';
import { DatasetError } from '../data/errors.ts';
import { inferFormat } from '../data/format.ts';
import { openDataset } from '../data/open.ts';
import type { DatasetSplit } from '../data/types.ts';
import { readLabelledImages, type LabelledImages } from '../eval/images.ts';
import { heldOutIndices } from '../eval/run-eval.ts';
import { resolveBundledPath } from '../util/package-root.ts';

export interface SplitSelection {
  split: DatasetSplit;
  /** Indices into the split, ascending. */
  indices: number[];
  /** Class index per chosen image, null when the split has no single-class labels. */
  classes: (number | null)[];
}

/** Opens `split` of --data (format inferred) or of the run's dataset; n undefined = every image. */
export async function selectImages(
  config: ExperimentConfig,
  opts: { data?: string; split: string; n?: number; seed: number },
): Promise<SplitSelection> {
  const path = resolveBundledPath(opts.data ?? config.data.path);
  const format = opts.data ? (inferFormat(path) ?? config.data.format) : config.data.format;
  const split = await openDataset({ format, path }, opts.split);
  const indices =
    opts.n === undefined ? Array.from({ length: split.length }, (_, i) => i) : heldOutIndices(split.length, opts.n, opts.seed);
  const labels = await split.labels();
  const classes = indices.map((i) => (split.labelKind === 'class' ? (labels[i]?.[0] ?? null) : null));
  return { split, indices, classes };
}

/** Images `indices` of the split at the model's side, channels and resize mode. */
export function readImages(config: ExperimentConfig, split: DatasetSplit, indices: readonly number[]): Promise<LabelledImages> {
  return readLabelledImages(split, indices, config.model.image_size, config.model.in_channels, config.data.resize);
}

/** Chunks of a selection, so a large split is never held in memory at once. */
export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Images the decoder sigma is fitted on: up to 200 of the validation split (seeded) of --data, or
 * of the run's own dataset when --data has none (an image folder without splits).
 */
export async function sigmaImages(
  config: ExperimentConfig,
  seed: number,
  data?: string,
): Promise<{ images: LabelledImages; description: string }> {
  const opts = { split: config.data.val_split, n: 200, seed };
  const { split, indices } = await selectImages(config, { data, ...opts }).catch((e: unknown) => {
    if (data === undefined || !(e instanceof DatasetError)) throw e;
    return selectImages(config, opts);
  });
  try {
    return { images: await readImages(config, split, indices), description: split.description };
  } finally {
    await split.close();
  }
}
