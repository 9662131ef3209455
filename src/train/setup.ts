// Everything a training run needs before its first step: the backend, the data, the model and its
// optimizers, the state (fresh, or from a checkpoint), the run directory and its record.
import { tf } from '../util/tf.ts';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, hostname } from 'node:os';
import type { ExperimentConfig } from '../config/schema.ts';
import { configToYaml } from '../config/load.ts';
import { initBackend, useNativePlan, type BackendInfo } from '../backend/index.ts';
import { openDataset } from '../data/open.ts';
import { filterClasses } from '../data/class-filter.ts';
import { createLoader, type Loader } from '../data/loader.ts';
import type { Batch, DatasetSplit } from '../data/types.ts';
import { createModel } from '../models/index.ts';
import type { VaeModel } from '../models/base.ts';
import { networkVariables } from '../models/blocks.ts';
import { batchNormLayers, type BatchNorm } from '../models/batch-norm.ts';
import { restoreCheckpoint, type TrainState } from '../run/checkpoint.ts';
import type { Progress } from '../run/progress.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { createOptimizers, type GroupOptimizer } from './step.ts';
import { broadcastWeights, type StepCollective } from './sync.ts';
import { resolveMicroBatch } from './micro-batch.ts';
import { LatentDensityFitter } from './latent-density-fit.ts';
import { clearInterruptedWrites, resolveResumeCheckpoint, rewindMetrics } from './resume.ts';

export interface RunSetup {
  runDir: string;
  backend: BackendInfo;
  dataset: DatasetSplit;
  loader: Loader;
  /** Images per forward pass. */
  micro: number;
  model: VaeModel;
  optimizers: Record<string, GroupOptimizer>;
  /** Every variable replicas must agree on: trained weights, then BatchNorm statistics. */
  allWeights: tf.Variable[];
  /** BatchNorm layers, whose moving statistics move once per optimizer step from the global batch. */
  norms: BatchNorm[];
  state: TrainState;
  /** Fixed real images (the start of the first batch of epoch 0) reconstructed every epoch, on the chief only. */
  preview: Batch | undefined;
  metricsFile: string;
  /** Fits the latent density each checkpoint carries (on the chief only). */
  latentDensity: LatentDensityFitter | undefined;
  /** Appends a line to metrics.jsonl (the chief's only). */
  record(line: object): void;
  /** Frees the data pipeline, optimizers and model. */
  release(): Promise<void>;
}

/** Images shown in the reconstruction grid every epoch. */
const PREVIEW_IMAGES = 8;

/** BatchNorm moving statistics and other non-trained state that replicas must share, ordered by stable name. */
function sharedState(model: VaeModel): tf.Variable[] {
  return [...networkVariables(Object.values(model.networks), 'nonTrainable')]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, variable]) => variable);
}

/** The first `k` images of the first batch: fixed real images to reconstruct every epoch. */
async function previewBatch(batches: AsyncIterable<Batch>, k: number): Promise<Batch> {
  for await (const b of batches) {
    const n = Math.min(k, b.n);
    const px = b.size * b.size * b.channels;
    return { ...b, n, images: b.images.slice(0, n * px), labels: b.labels.slice(0, n * b.labelWidth), indices: b.indices.slice(0, n) };
  }
  throw new Error('the training split yielded no batch: is the dataset smaller than one batch with drop_last?');
}

export async function setUpRun(
  cfg: ExperimentConfig,
  runDir: string,
  resume: string | undefined,
  collective: StepCollective,
  progress: Progress,
): Promise<RunSetup> {
  const { rank, worldSize } = collective;
  const isChief = rank === 0;
  const log = (m: string): void => {
    if (isChief) progress.info(m);
  };
  // Every worker names its own device: on GPUs each has its own adapter.
  const logDevice = (m: string): void => progress.info(worldSize > 1 ? `rank ${rank}: ${m}` : m);
  const backend = await initBackend(cfg.train.backend, logDevice, {
    threads: cfg.train.threads,
    allowSoftwareGpu: cfg.train.allow_software_gpu,
  });
  // native: kernels follow the run's graph plan (runDir/native-plan.json, the chief writes it); train.deterministic (src/backend/native/run-plan.ts).
  const deterministic = cfg.train.deterministic === 'auto' ? worldSize > 1 : cfg.train.deterministic;
  useNativePlan(runDir, { deterministic, write: isChief, log });
  const dataset = await filterClasses(await openDataset(cfg.data, cfg.data.split), cfg.data.classes);
  const loader = createLoader({
    split: dataset,
    imageSize: cfg.model.image_size,
    channels: cfg.model.in_channels,
    resize: cfg.data.resize,
    augment: { flip: cfg.data.random_flip, rot90: cfg.data.random_rot90 },
    globalBatch: cfg.train.batch_size,
    shard: { seed: cfg.train.seed, rank, worldSize },
    dropLast: cfg.data.drop_last,
    threads: cfg.data.threads,
    prefetch: cfg.data.prefetch,
    strict: cfg.data.strict,
    log,
  });
  const rankBatch = cfg.train.batch_size / worldSize;
  const micro = resolveMicroBatch(cfg, rankBatch, backend);
  log(
    `data: ${dataset.description}, ${loader.datasetSize} images, ${loader.stepsPerEpoch} steps/epoch of ${cfg.train.batch_size} (${worldSize} worker(s) x ${Math.ceil(rankBatch / micro)} micro-batch(es) of <= ${micro})`,
  );

  const model = createModel(cfg.model, cfg.train.seed, dataset.labelWidth);
  const optimizers = createOptimizers(model, cfg.train);
  const allWeights = [...Object.values(optimizers).flatMap((o) => Object.values(o.variables)), ...sharedState(model)];
  const norms = batchNormLayers(Object.values(model.networks));
  for (const layer of norms) layer.deferUpdates = true;
  log(
    `model: ${cfg.model.name}, ${model.paramCount().toLocaleString('en-US')} parameters, ${cfg.model.image_size}x${cfg.model.image_size}x${cfg.model.in_channels}`,
  );

  let state: TrainState = {
    version: 1,
    epoch: 0,
    stepInEpoch: 0,
    step: 0,
    bestLoss: Infinity,
    lastLoss: NaN,
    labelWidth: dataset.labelWidth,
    labelKind: dataset.labelKind,
    worldSize,
    savedAt: '',
  };
  const cleared = isChief ? clearInterruptedWrites(runDir) : 0;
  if (cleared > 0) log(`removed ${cleared} temporary file(s) left in ${runDir} by an interrupted write`);
  if (resume) {
    const dir = resolveResumeCheckpoint(resume, log, isChief);
    const adams = Object.fromEntries(Object.entries(optimizers).map(([group, o]) => [group, o.adam]));
    state = { ...restoreCheckpoint(dir, model, adams), worldSize };
    log(`resumed from ${dir}: epoch ${state.epoch + 1}, step ${state.step}`);
  } else {
    await broadcastWeights(collective, allWeights);
  }

  const preview = isChief ? await previewBatch(loader.batches(0), PREVIEW_IMAGES) : undefined;
  if (isChief) {
    mkdirSync(runDir, { recursive: true });
    writeFileAtomic(join(runDir, 'config.yaml'), configToYaml(cfg));
    log(`run directory: ${runDir}`);
  }
  const metricsFile = join(runDir, 'metrics.jsonl');
  const rewound = isChief && resume ? rewindMetrics(metricsFile, state.step) : 0;
  if (rewound > 0) log(`metrics.jsonl: dropped ${rewound} record(s) after step ${state.step}, which run again now`);
  const record = (line: object): void => {
    if (isChief) appendFileSync(metricsFile, `${JSON.stringify(line)}\n`);
  };
  // metrics.jsonl counts epochs from 1, as the console does (run/metrics-log.ts).
  record({
    kind: 'start',
    step: state.step,
    epoch: state.epoch + 1,
    backend: backend.name,
    gpu: backend.gpu,
    world_size: worldSize,
    resumed_from: resume ?? null,
    host: hostname(),
    cpus: cpus().length,
    node: process.version,
    time: new Date().toISOString(),
  });
  const latentDensity = isChief ? new LatentDensityFitter(model, dataset, cfg, micro, log) : undefined;
  const release = async (): Promise<void> => {
    await latentDensity?.close();
    await loader.close();
    await dataset.close();
    for (const opt of Object.values(optimizers)) opt.dispose();
    model.dispose();
  };
  return {
    runDir,
    backend,
    dataset,
    loader,
    micro,
    model,
    optimizers,
    allWeights,
    norms,
    state,
    preview,
    metricsFile,
    latentDensity,
    record,
    release,
  };
}
