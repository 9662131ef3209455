// Real images of a run's dataset as the model sees them (resized, normalised, no augmentation).
import type { ExperimentConfig } from '../config/schema.ts';
import { openDataset } from '../data/open.ts';
import { createLoader } from '../data/loader.ts';
import type { Batch } from '../data/types.ts';

/** The first n images of `split` of the run's dataset (fewer if the split is smaller). */
export async function readImages(config: ExperimentConfig, split: string, n: number): Promise<Batch> {
  const dataset = await openDataset(config.data, split);
  const loader = createLoader({
    split: dataset,
    imageSize: config.model.image_size,
    channels: config.model.in_channels,
    resize: config.data.resize,
    augment: { flip: false, rot90: false },
    globalBatch: Math.min(n, dataset.length),
    shard: { seed: config.train.seed, rank: 0, worldSize: 1 },
    dropLast: true,
    threads: 0,
    prefetch: 1,
    strict: config.data.strict,
  });
  try {
    for await (const batch of loader.batches(0)) return batch;
    throw new Error(`${dataset.description}: no images`);
  } finally {
    await loader.close();
    await dataset.close();
  }
}
