// The trained feature net on disk, keyed by everything that determines its weights and nothing
// else: the data it learns from (dataset content, split, how the pixels are read), the network's
// input, task, recipe and seed. No field of a run's training config enters (model, augmentation,
// optimiser), so every run evaluated on the same data shares one network and its numbers compare.
// Layout: <cacheDir>/<key>/model.json (topology, weight specs, what it was trained for) + weights.bin.
import { tf } from '../util/tf.ts';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResizeMode } from '../data/transforms.ts';
import { writeDirAtomic } from '../util/atomic.ts';
import { Classifier, FEATURE_NET_VERSION, type ClassifierTask, type TrainRecipe } from './feature-net.ts';

/** What defines the real images a feature net learns from. */
export interface FeatureNetData {
  /** sha256 of the dataset file, or of a folder's listing. */
  datasetHash: string;
  /** The split it learns from. */
  split: string;
  /** How the data layer resizes the files' images (it changes the pixels). */
  resize: ResizeMode;
}

export interface FeatureNetKey extends FeatureNetData {
  /** Side its training images were read at (`medvae eval`: FEATURE_INPUT_SIZE, whatever the model's side). */
  imageSize: number;
  channels: 1 | 3;
  task: ClassifierTask;
  recipe: TrainRecipe;
  seed: number;
}

export class FeatureCacheError extends Error {
  override name = 'FeatureCacheError';
}

interface CachedFile {
  version: number;
  key: FeatureNetKey;
  modelTopology: object;
  weightSpecs: tf.io.WeightsManifestEntry[];
}

export function featureNetKeyId(key: FeatureNetKey): string {
  const text = JSON.stringify({ version: FEATURE_NET_VERSION, ...key });
  return `featnet-v${FEATURE_NET_VERSION}-${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
}

export async function loadCachedClassifier(cacheDir: string, key: FeatureNetKey): Promise<Classifier | undefined> {
  const dir = join(cacheDir, featureNetKeyId(key));
  const jsonPath = join(dir, 'model.json');
  if (!existsSync(jsonPath)) return undefined;
  let parsed: CachedFile;
  try {
    parsed = JSON.parse(readFileSync(jsonPath, 'utf8')) as CachedFile;
  } catch (e) {
    throw new FeatureCacheError(`${jsonPath}: not valid JSON (${(e as Error).message}); delete the folder to retrain`);
  }
  if (parsed.version !== FEATURE_NET_VERSION || JSON.stringify(parsed.key) !== JSON.stringify(key)) {
    throw new FeatureCacheError(`${jsonPath}: was trained for a different key; delete the folder to retrain`);
  }
  const bytes = readFileSync(join(dir, 'weights.bin'));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const net = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: parsed.modelTopology, weightSpecs: parsed.weightSpecs, weightData }),
  );
  return Classifier.fromNet(net, key.task, key.channels);
}

export async function saveCachedClassifier(cacheDir: string, key: FeatureNetKey, classifier: Classifier): Promise<void> {
  await writeDirAtomic(join(cacheDir, featureNetKeyId(key)), async (dir) => {
    await classifier.net.save(
      tf.io.withSaveHandler(async (artifacts) => {
        if (!artifacts.modelTopology || !artifacts.weightSpecs || !artifacts.weightData) {
          throw new FeatureCacheError('feature net save produced no topology or weights');
        }
        const file: CachedFile = {
          version: FEATURE_NET_VERSION,
          key,
          modelTopology: artifacts.modelTopology as object,
          weightSpecs: artifacts.weightSpecs,
        };
        writeFileSync(join(dir, 'model.json'), JSON.stringify(file));
        const data = artifacts.weightData;
        const buffers = Array.isArray(data) ? data : [data];
        writeFileSync(join(dir, 'weights.bin'), Buffer.concat(buffers.map((b) => Buffer.from(b))));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
  });
}
