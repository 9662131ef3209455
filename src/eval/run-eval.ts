// `medvae eval` for one run directory: load the run, read the real images through the data layer,
// evaluate, write eval.json. The feature net is cached beside the run directories (the run's
// parent folder, `.feature-nets/`), so every run of one output folder on one dataset file shares it.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import * as os from 'node:os';
import { initBackend } from '../backend/index.ts';
import type { BackendChoice } from '../config/schema.ts';
import { openDataset } from '../data/open.ts';
import { loadRun, readRunConfig } from '../train/checkpoint.ts';
import { hashKeys, mulberry32, Stream } from '../train/rng.ts';
import { PACKAGE_ROOT } from '../cli/train-options.ts';
import { FEATURE_INPUT_SIZE, type TrainRecipe } from './feature-net.ts';
import { DEFAULT_MAX_FEATURE_TRAIN, evaluateModel, featureTrainIndices } from './evaluate.ts';
import type { EvalFile, MachineInfo } from './eval-file.ts';
import { readLabelledImages } from './images.ts';
import { sampleWithoutReplacement } from './kid.ts';

export interface RunEvalOptions {
  split: string;
  n: number;
  seed: number;
  backend?: BackendChoice;
  /** Feature-net / TSTR classifier recipe (default DEFAULT_RECIPE); part of the feature-net key. */
  recipe?: TrainRecipe;
  /** Defaults to <run dir>/../.feature-nets. */
  cacheDir?: string;
  log?: (line: string) => void;
}

/** sha256 of a dataset file, or of a folder's sorted (relative path, size) listing. */
export async function datasetHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  if (statSync(path).isDirectory()) {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.isFile()) files.push(full);
      }
    };
    walk(path);
    for (const f of files.map((full) => relative(path, full)).sort()) hash.update(`${f}\0${statSync(join(path, f)).size}\n`);
  } else {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    memory_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
  };
}

export async function evalRun(runDir: string, options: RunEvalOptions): Promise<EvalFile> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  // The backend comes first: the model's variables are created on it.
  const config = readRunConfig(runDir);
  const backend = await initBackend(options.backend ?? config.train.backend, log);
  const { model, state } = await loadRun(runDir);
  try {
    const dataPath = existsSync(config.data.path) ? config.data.path : join(PACKAGE_ROOT, config.data.path);
    const data = { format: config.data.format, path: dataPath };
    const trainSplit = await openDataset(data, config.data.split);
    const heldOutSplit = await openDataset(data, options.split);
    try {
      const nHeld = Math.min(options.n, heldOutSplit.length);
      // A seeded subset of the held-out split (all of it when smaller than n), in index order.
      const heldIdx = sampleWithoutReplacement(heldOutSplit.length, nHeld, mulberry32(hashKeys(options.seed, Stream.eval, 10))).sort((a, b) => a - b);
      const trainIdx = featureTrainIndices(trainSplit.length, DEFAULT_MAX_FEATURE_TRAIN, options.seed);
      log(`eval: reading ${nHeld} images of ${heldOutSplit.description} and ${trainIdx.length} of ${trainSplit.description}`);
      const heldOut = await readLabelledImages(heldOutSplit, heldIdx, config.model.image_size, config.model.in_channels, config.data.resize);
      const train = await readLabelledImages(trainSplit, trainIdx, FEATURE_INPUT_SIZE, config.model.in_channels, config.data.resize);
      const metrics = await evaluateModel(
        { model, train, trainSplit: config.data.split, heldOut, heldOutSplit: options.split, datasetId: `${await datasetHash(dataPath)}:${config.data.resize}` },
        { n: options.n, seed: options.seed, recipe: options.recipe, featureCacheDir: options.cacheDir ?? join(dirname(resolve(runDir)), '.feature-nets'), log },
      );
      return {
        format: 'medvae-eval',
        version: 1,
        run: basename(resolve(runDir)),
        split: options.split,
        n: options.n,
        seed: options.seed,
        model: { name: model.kind, image_size: config.model.image_size, channels: config.model.in_channels, param_count: model.paramCount(), step: state.step },
        metrics,
        meta: { created_at: new Date().toISOString(), seconds: (Date.now() - started) / 1000, backend: `${backend.name}${backend.gpu ? ' (gpu)' : ''}`, machine: machineInfo() },
      };
    } finally {
      await trainSplit.close();
      await heldOutSplit.close();
    }
  } finally {
    model.dispose();
  }
}
