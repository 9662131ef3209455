// A checkpoint is one plain record on disk:
//   checkpoints/step-0000420/
//     encoder/model.json + weights.bin      each network in TF.js LayersModel format
//     decoder/...                           (tf.loadLayersModel('.../model.json') loads it in a browser)
//     optimizer-<group>.bin + .json         Adam moments and step count per optimizer group
//     state.json                            epoch, step, data position, best loss, label width
//     latent-density.json                   the aggregate posterior's density (models/latent-density.ts)
//     manifest.json                         written last: every other file's size and SHA-256
// written into a temporary directory and renamed, so a crash never leaves half a checkpoint.
import { tf } from '../util/tf.ts';
import { existsSync, readFileSync, rmSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VaeModel } from '../models/base.ts';
import type { LabelKind } from '../data/types.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { loadConfig } from '../config/load.ts';
import { createModel } from '../models/index.ts';
import { LATENT_DENSITY_FILE, latentDensityToJson, parseLatentDensity, type LatentDensity } from '../models/latent-density.ts';
import { Adam } from '../optim/adam.ts';
import { writeDirAtomic } from '../util/atomic.ts';
import { CheckpointError, writeManifest } from './checkpoint-manifest.ts';
import {
  listCheckpoints,
  resolveRunPath,
  selectRunCheckpoint,
  type RunCheckpoint,
  type SelectCheckpointOptions,
} from './run-checkpoint.ts';

export { CheckpointError } from './checkpoint-manifest.ts';
export { listCheckpoints, latestCheckpoint, selectRunCheckpoint, RunDirError, type RunCheckpoint } from './run-checkpoint.ts';

/** Where training stands: enough to continue as if nothing had happened. */
export interface TrainState {
  version: 1;
  /** Epoch being run (0-based) and the next step inside it. */
  epoch: number;
  stepInEpoch: number;
  /** Optimizer steps done in total. */
  step: number;
  bestLoss: number;
  lastLoss: number;
  labelWidth: number;
  labelKind: LabelKind;
  worldSize: number;
  savedAt: string;
}

function concatWeightData(data: ArrayBuffer | ArrayBuffer[]): ArrayBuffer {
  return Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
}

/** Saves a network as model.json + weights.bin, the files tf.loadLayersModel reads. */
async function saveLayersModel(net: tf.LayersModel, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await net.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = concatWeightData(artifacts.weightData ?? new ArrayBuffer(0));
      writeFileSync(join(dir, 'weights.bin'), new Uint8Array(weights));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

function readWeights(dir: string, what: string): tf.NamedTensorMap {
  const jsonPath = join(dir, 'model.json');
  if (!existsSync(jsonPath)) throw new CheckpointError(`${jsonPath}: missing; the checkpoint has no ${what}`);
  const modelJson = JSON.parse(readFileSync(jsonPath, 'utf8')) as tf.io.ModelJSON;
  const specs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const buffers = modelJson.weightsManifest.flatMap((group) => group.paths.map((p) => readFileSync(join(dir, p))));
  const bytes = Buffer.concat(buffers);
  return decodeOrName(bytes, specs, join(dir, 'weights.bin'));
}

/** tf's decode error names shapes, not files: say which file does not hold what its specs describe. */
function decodeOrName(bytes: Buffer, specs: tf.io.WeightsManifestEntry[], file: string): tf.NamedTensorMap {
  try {
    return tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, specs);
  } catch (e) {
    throw new CheckpointError(
      `${file}: does not hold the weights its specs describe (${(e as Error).message}); the checkpoint is damaged`,
      { cause: e },
    );
  }
}

/** Copies saved values into a model's networks, matching weights by name; every weight must be there. */
function loadNetworkWeights(net: tf.LayersModel, values: tf.NamedTensorMap, where: string): void {
  for (const w of net.weights) {
    const value = values[w.originalName];
    if (!value)
      throw new CheckpointError(
        `${where}: no saved value for weight '${w.originalName}' (was the checkpoint made with another model config?)`,
      );
    if (value.shape.join('x') !== w.shape.join('x')) {
      throw new CheckpointError(`${where}: weight '${w.originalName}' has shape [${value.shape}] on disk but [${w.shape}] in the model`);
    }
    w.write(value);
  }
}

async function saveNamedTensors(tensors: tf.NamedTensorMap, file: string, extra: Record<string, unknown>): Promise<void> {
  const { data, specs } = await tf.io.encodeWeights(tensors);
  writeFileSync(`${file}.bin`, new Uint8Array(concatWeightData(data)));
  writeFileSync(`${file}.json`, JSON.stringify({ ...extra, specs }));
}

function readNamedTensors(file: string): { tensors: tf.NamedTensorMap; extra: Record<string, unknown> } {
  if (!existsSync(`${file}.json`)) throw new CheckpointError(`${file}.json: missing`);
  const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { specs: tf.io.WeightsManifestEntry[] } & Record<string, unknown>;
  const bytes = readFileSync(`${file}.bin`);
  const tensors = decodeOrName(bytes, meta.specs, `${file}.bin`);
  return { tensors, extra: meta };
}

export interface CheckpointContents {
  model: VaeModel;
  optimizers: Record<string, Adam>;
  state: TrainState;
  /** Fitted to this checkpoint's encoder; absent, the checkpoint has none (sampling falls back). */
  latentDensity?: LatentDensity;
}

/** Writes a checkpoint under `root/step-XXXXXXX`, keeps the newest `keepLast`, and copies it to `root/best` when asked. */
export async function saveCheckpoint(root: string, c: CheckpointContents, keepLast: number, isBest: boolean): Promise<string> {
  const target = join(root, `step-${String(c.state.step).padStart(7, '0')}`);
  await writeDirAtomic(target, async (dir) => {
    for (const [name, net] of Object.entries(c.model.networks)) await saveLayersModel(net, join(dir, name));
    for (const [group, opt] of Object.entries(c.optimizers)) {
      const { step, tensors } = opt.state();
      await saveNamedTensors(tensors, join(dir, `optimizer-${group}`), { step, lr: opt.lr });
    }
    writeFileSync(join(dir, 'state.json'), JSON.stringify(c.state, null, 2));
    if (c.latentDensity) writeFileSync(join(dir, LATENT_DENSITY_FILE), latentDensityToJson(c.latentDensity));
    writeManifest(dir);
  });
  if (isBest)
    await writeDirAtomic(join(root, 'best'), async (dir) => {
      cpSync(target, dir, { recursive: true });
    });
  const steps = listCheckpoints(root);
  for (const old of steps.slice(0, Math.max(0, steps.length - keepLast))) rmSync(old, { recursive: true, force: true });
  return target;
}

export function readState(dir: string): TrainState {
  const file = join(dir, 'state.json');
  if (!existsSync(file)) throw new CheckpointError(`${file}: missing; ${dir} is not a complete checkpoint`);
  const state = JSON.parse(readFileSync(file, 'utf8')) as TrainState;
  if (state.version !== 1) throw new CheckpointError(`${file}: checkpoint version ${String(state.version)} is not supported (expected 1)`);
  return state;
}

/** Loads networks and optimizer state from a checkpoint into an already built model and optimizers. */
export function restoreCheckpoint(dir: string, model: VaeModel, optimizers: Record<string, Adam>): TrainState {
  const state = restoreNetworks(dir, model);
  for (const [group, opt] of Object.entries(optimizers)) {
    const { tensors, extra } = readNamedTensors(join(dir, `optimizer-${group}`));
    try {
      opt.restore(Number(extra.step), tensors);
    } finally {
      tf.dispose(tensors);
    }
  }
  return state;
}

/** Loads only the networks (for sampling, evaluation): no optimizers. */
export function restoreNetworks(dir: string, model: VaeModel): TrainState {
  const state = readState(dir);
  for (const [name, net] of Object.entries(model.networks)) {
    const values = readWeights(join(dir, name), `network '${name}'`);
    try {
      loadNetworkWeights(net, values, join(dir, name));
    } finally {
      tf.dispose(values);
    }
  }
  return state;
}

/** The resolved config a run was started with (runs/<name>/config.yaml); `path` may also be one of its checkpoint folders. */
export function readRunConfig(path: string): ExperimentConfig {
  const { runDir } = resolveRunPath(path);
  // Through the defaults: a run written before a key existed gets that key's default.
  return loadConfig({ file: join(runDir, 'config.yaml') });
}

/** A trained run ready to use: its config and its model with the weights of one checkpoint. */
export interface LoadedRun {
  config: ExperimentConfig;
  model: VaeModel;
  runDir: string;
  /** The checkpoint folder the weights came from. */
  checkpoint: string;
  state: TrainState;
  /** The checkpoint's latent density; undefined for checkpoints written before it existed. */
  latentDensity: LatentDensity | undefined;
}

/** A checkpoint's latent density, undefined when it has none (checkpoints from before it existed). */
export function readLatentDensity(dir: string): LatentDensity | undefined {
  const file = join(dir, LATENT_DENSITY_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return parseLatentDensity(readFileSync(file, 'utf8'), file);
  } catch (e) {
    throw new CheckpointError(`${(e as Error).message}; the checkpoint is damaged`, { cause: e });
  }
}

export type LoadRunOptions = SelectCheckpointOptions;

/**
 * Loads a run's config and the weights of one checkpoint; the backend must be initialised first.
 * `run` is a run directory, one of its checkpoint folders, or what selectRunCheckpoint chose.
 * Without a checkpoint named, the newest one that proves intact against its manifest is used and
 * newer damaged ones are reported in one line (`options.log`, default stderr); a named one
 * (`'best'`, `'step-N'`, a folder) is used as it is or refused. The string `'best'` alone keeps its
 * old meaning: best when the run has one, else the newest intact.
 */
export async function loadRun(run: string | RunCheckpoint, options: LoadRunOptions | 'latest' | 'best' = {}): Promise<LoadedRun> {
  let opts: LoadRunOptions = typeof options === 'string' ? {} : options;
  if (options === 'best' && typeof run === 'string') {
    const { runDir } = resolveRunPath(run);
    if (existsSync(join(runDir, 'checkpoints', 'best'))) opts = { checkpoint: 'best' };
  }
  let chosen = typeof run === 'string' ? selectRunCheckpoint(run, opts) : run;
  for (let attempt = 0; ; attempt++) {
    try {
      return loadCheckpointOf(chosen);
    } catch (e) {
      // Pruned or set aside by the process that trains the run while it was being read: choose again.
      if (chosen.named || attempt >= 2 || existsSync(chosen.dir)) throw e;
      (opts.log ?? ((line: string) => process.stderr.write(`${line}\n`)))(
        `${chosen.dir} went away while being read (the run is still training?); choosing again`,
      );
      chosen = selectRunCheckpoint(chosen.runDir, opts);
    }
  }
}

function loadCheckpointOf({ runDir, dir }: RunCheckpoint): LoadedRun {
  const config = readRunConfig(runDir);
  const state = readState(dir);
  const model = createModel(config.model, config.train.seed, state.labelWidth);
  try {
    restoreNetworks(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { config, model, runDir, checkpoint: dir, state, latentDensity: readLatentDensity(dir) };
}
