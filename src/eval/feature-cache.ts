// The trained feature net on disk, keyed by everything that determines its weights, so every run
// evaluated against the same dataset file shares one network (and its numbers compare).
// Layout: <cacheDir>/<key>/model.json (topology, weight specs, what it was trained for) + weights.bin.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../train/atomic.ts';
import { Classifier, FEATURE_NET_VERSION, type ClassifierTask, type TrainRecipe } from './feature-net.ts';

export interface FeatureNetKey {
  /** Content hash of the dataset file and how its images were read. */
  datasetId: string;
  /** Which split of the dataset file trained it. */
  trainSplit: string;
  seed: number;
  channels: 1 | 3;
  task: ClassifierTask;
  recipe: TrainRecipe;
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
  const net = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: parsed.modelTopology, weightSpecs: parsed.weightSpecs, weightData }));
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
