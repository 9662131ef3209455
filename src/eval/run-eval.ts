// `medvae eval` for one run directory: load the run, read the real images through the data layer,
// evaluate, write eval.json and the default sampler (sampler.json). The feature net is cached beside
// the run directories (the run's parent folder, `.feature-nets/`), so every run of one output folder
// on one dataset file shares it.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import * as os from 'node:os';
import { initBackend } from '../backend/index.ts';
import type { BackendChoice, ExperimentConfig } from '../config/schema.ts';
import { DatasetError } from '../data/errors.ts';
import { openDataset } from '../data/open.ts';
import type { DatasetSplit } from '../data/types.ts';
import { loadRun, readRunConfig, selectRunCheckpoint } from '../run/checkpoint.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { SAMPLER_CHOICE_FILE, writeSamplerChoice } from '../run/sampler-choice.ts';
import type { DataConfig } from '../config/schema.ts';
import type { VaeModel } from '../models/base.ts';
import { JointVae } from '../models/joint_vae.ts';
import { resolveBundledPath } from '../util/package-root.ts';
import type { FeatureNetData } from './feature-cache.ts';
import { FEATURE_INPUT_SIZE, type TrainRecipe } from './feature-net.ts';
import { DEFAULT_MAX_FEATURE_TRAIN, evaluateModel, featureTrainIndices, type ValidationImages } from './evaluate.ts';
import { EVAL_FILE_VERSION, type EvalFile, type MachineInfo } from './eval-file.ts';
import { readLabelledImages, readPixelMean, type LabelledImages } from './images.ts';
import { sampleWithoutReplacement } from './kid.ts';

export interface RunEvalOptions {
  split: string;
  n: number;
  seed: number;
  backend?: BackendChoice;
  /** Absent: the run config's train.allow_software_gpu. */
  allowSoftwareGpu?: boolean;
  /** Feature-net / TSTR classifier recipe (default DEFAULT_RECIPE); part of the feature-net key. */
  recipe?: TrainRecipe;
  /** Defaults to <run dir>/../.feature-nets. */
  cacheDir?: string;
  /** k of the precision and recall manifolds (default DEFAULT_PR_K). */
  prK?: number;
  /** Classifier seeds of TSTR and real + synthetic (default DEFAULT_UTILITY_SEEDS). */
  utilitySeeds?: number;
  /** Which checkpoint (selectRunCheckpoint's names: 'best', 'step-N', a folder); default: the newest intact one. */
  checkpoint?: string;
  /** Progress lines; a passed-over damaged checkpoint is reported here too (on stderr when absent). */
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

/** The data fields of a run's config that define the feature net's training images; nothing else of the config. */
export function featureNetData(data: DataConfig, datasetSha256: string): FeatureNetData {
  return { datasetHash: datasetSha256, split: data.split, resize: data.resize };
}

/** Which held-out images are scored: a seeded subset of n of the split (all when n >= its size), in index order. */
export function heldOutIndices(splitLength: number, n: number, seed: number): number[] {
  const count = Math.min(n, splitLength);
  return sampleWithoutReplacement(splitLength, count, mulberry32(hashKeys(seed, Stream.eval, 10))).sort((a, b) => a - b);
}

/**
 * A JointVAE loaded from a checkpoint holds its config's initial temperature; its weights were last
 * trained (step state.step - 1) at the annealed one, which the sampled reconstructions of the ELBO
 * must use. Returns the temperature set, or null for models without one.
 */
export function useTrainedTemperature(model: VaeModel, stepsDone: number): number | null {
  if (!(model instanceof JointVae)) return null;
  model.temperature = model.temperatureAt(Math.max(stepsDone - 1, 0));
  return model.temperature;
}

/** At most this many pixel values of training images are encoded for the aggregate posterior fit (5,461 images at 64x64x3). */
const LATENT_FIT_VALUES = 64 * 2 ** 20;

/** The training images (at the model's side) the aggregate posterior is fitted on: a seeded subset within LATENT_FIT_VALUES. */
export async function readLatentFitImages(split: DatasetSplit, config: ExperimentConfig, seed: number): Promise<LabelledImages> {
  const { image_size: size, in_channels: channels } = config.model;
  const cap = Math.max(2, Math.floor(LATENT_FIT_VALUES / (size * size * channels)));
  return readLabelledImages(split, featureTrainIndices(split.length, cap, seed), size, channels, config.data.resize);
}

/**
 * The images the default sampler is chosen on (evaluate.ts): up to n of the validation split
 * (config.data.val_split), chosen and read as the held-out images are; or why the data has none.
 * An image folder without a sub-folder of that name serves its root, the training images, for every
 * split (src/data/folder.ts): it has no validation split.
 */
export async function readValidationImages(
  config: ExperimentConfig,
  heldOut: { split: string; images: LabelledImages },
  n: number,
  seed: number,
  log: (line: string) => void,
): Promise<ValidationImages> {
  const name = config.data.val_split;
  // Evaluated on the validation split: those images choose, as they are.
  if (heldOut.split === name) return { split: name, images: heldOut.images };
  const dataPath = resolveBundledPath(config.data.path);
  if (config.data.format === 'folder' && !statSync(join(dataPath, name), { throwIfNoEntry: false })?.isDirectory())
    return { split: name, missing: `the image folder has no '${name}' sub-folder` };
  let split: DatasetSplit;
  try {
    split = await openDataset(config.data, name);
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    return { split: name, missing: `no validation split '${name}' (${e.message})` };
  }
  try {
    if (split.length < 2) return { split: name, missing: `validation split '${name}' has ${split.length} images` };
    const indices = heldOutIndices(split.length, n, seed);
    log(`eval: reading ${indices.length} images of ${split.description} to choose the default sampler on`);
    const { image_size: size, in_channels: channels } = config.model;
    return { split: name, images: await readLabelledImages(split, indices, size, channels, config.data.resize) };
  } finally {
    await split.close();
  }
}

/** Evaluates a run (its directory, or one of its checkpoint folders). */
export async function evalRun(runPath: string, options: RunEvalOptions): Promise<EvalFile> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  // The run and its checkpoint are checked before anything starts.
  const chosen = selectRunCheckpoint(runPath, { checkpoint: options.checkpoint, log: options.log });
  const { runDir } = chosen;
  // The backend comes first: the model's variables are created on it.
  const config = readRunConfig(runDir);
  const backend = await initBackend(options.backend ?? config.train.backend, log, {
    allowSoftwareGpu: options.allowSoftwareGpu ?? config.train.allow_software_gpu,
  });
  const { model, state, latentDensity } = await loadRun(chosen);
  try {
    const dataPath = resolveBundledPath(config.data.path);
    const data = { format: config.data.format, path: dataPath };
    const trainSplit = await openDataset(data, config.data.split);
    const heldOutSplit = await openDataset(data, options.split);
    try {
      const heldIdx = heldOutIndices(heldOutSplit.length, options.n, options.seed);
      const trainIdx = featureTrainIndices(trainSplit.length, DEFAULT_MAX_FEATURE_TRAIN, options.seed);
      log(`eval: reading ${heldIdx.length} images of ${heldOutSplit.description} and ${trainIdx.length} of ${trainSplit.description}`);
      const { image_size: size, in_channels: channels } = config.model;
      const heldOut = await readLabelledImages(heldOutSplit, heldIdx, size, channels, config.data.resize);
      const train = await readLabelledImages(trainSplit, trainIdx, FEATURE_INPUT_SIZE, channels, config.data.resize);
      const trainMean = await readPixelMean(trainSplit, trainIdx, size, channels, config.data.resize);
      const latentFitImages = await readLatentFitImages(trainSplit, config, options.seed);
      const validation = await readValidationImages(config, { split: options.split, images: heldOut }, options.n, options.seed, log);
      const temperature = useTrainedTemperature(model, state.step);
      const metrics = await evaluateModel(
        {
          model,
          train,
          trainData: featureNetData(config.data, await datasetHash(dataPath)),
          trainMean,
          latentFitImages,
          latentDensity,
          heldOut,
          heldOutSplit: options.split,
          validation,
        },
        {
          n: options.n,
          seed: options.seed,
          recipe: options.recipe,
          featureCacheDir: options.cacheDir ?? join(dirname(resolve(runDir)), '.feature-nets'),
          prK: options.prK,
          utilitySeeds: options.utilitySeeds,
          gridDir: runDir,
          log,
        },
      );
      if (metrics.sampler) {
        const { default: sampler, chosen_on: split, frechet_chosen_on: frechet } = metrics.sampler;
        writeSamplerChoice(runDir, { format: 'medvae-sampler', version: 1, step: state.step, sampler, split, frechet });
        log(`eval: ${SAMPLER_CHOICE_FILE}: sample and report now draw from the ${sampler} (chosen on '${split}') for step ${state.step}`);
      }
      return {
        format: 'medvae-eval',
        version: EVAL_FILE_VERSION,
        run: basename(resolve(runDir)),
        split: options.split,
        n: options.n,
        seed: options.seed,
        heldout_indices: heldIdx,
        model: { name: model.kind, image_size: size, channels, param_count: model.paramCount(), step: state.step, temperature },
        metrics,
        meta: {
          created_at: new Date().toISOString(),
          seconds: (Date.now() - started) / 1000,
          backend: `${backend.name}${backend.gpu ? ' (gpu)' : ''}`,
          machine: machineInfo(),
        },
      };
    } finally {
      await trainSplit.close();
      await heldOutSplit.close();
    }
  } finally {
    model.dispose();
  }
}
