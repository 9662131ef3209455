// The training loop, top to bottom: set up (backend, data, model, optimizers, resume), then for
// each epoch and step: micro-batches -> gradients -> average across workers -> optimizer ->
// checks -> metrics; at the end of each epoch: pictures and a checkpoint. The same loop runs in
// `medvae train` (one process) and in every worker of `medvae-dist` (with the ring collective over sockets).
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, hostname } from 'node:os';
import type { ExperimentConfig } from '../config/schema.ts';
import { configToYaml } from '../config/load.ts';
import { initBackend, translateBackendError, type BackendInfo } from '../backend/index.ts';
import { openDataset } from '../data/open.ts';
import { filterClasses } from '../data/class-filter.ts';
import { createLoader } from '../data/loader.ts';
import type { Batch } from '../data/types.ts';
import { createModel } from '../models/index.ts';
import type { VaeModel } from '../models/base.ts';
import { networkVariables } from '../models/blocks.ts';
import { batchNormLayers } from '../models/batch-norm.ts';
import { accumulateGradients, applyGradients, computeGradients, createOptimizers, gradientWalk } from './step.ts';
import { latestCheckpoint, restoreCheckpoint, saveCheckpoint, type TrainState } from '../run/checkpoint.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { averageAcrossWorkers, broadcastWeights, checkReplicasAgree, OverlappedReducer, type StepCollective } from './sync.ts';
import { DivergenceMonitor } from './divergence.ts';
import { LocalCollective } from '../collective/collective.ts';
import { DEFAULT_BUCKET_BYTES } from '../collective/ring-options.ts';
import { resolveMicroBatch } from './micro-batch.ts';
import { writeEpochPictures } from './pictures.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { clearInterruptedWrites, resolveResumeCheckpoint, rewindMetrics } from './resume.ts';
import type { Progress } from '../run/progress.ts';

/** Everything a step reports, for metrics endpoints and logs. */
export interface StepInfo {
  step: number;
  epoch: number;
  terms: Record<string, number>;
  lr: number;
  /** Images this process trained on in the step (its share of the global batch). */
  images: number;
  stepSeconds: number;
  dataWaitSeconds: number;
  allReduceSeconds: number;
  allReduceBytes: number;
  /** Of allReduceSeconds, the time spent waiting for a slower peer (a straggler), not moving bytes. */
  allReduceWaitSeconds: number;
  /**
   * With overlap and a ring on the training thread: the time the backward pass stood still for it
   * (one event-loop turn at a time, which also runs whatever else is queued, e.g. a garbage
   * collection); 0 for a ring on its own thread, as medvae-dist runs it. allReduceSeconds is what
   * came after the backward pass.
   */
  allReducePauseSeconds: number;
  /**
   * With overlap: the communication work the backward pass did itself (filling buckets, and the
   * ring's sending, receiving and summing in its pauses); together with allReduceSeconds less
   * allReduceWaitSeconds, the communication the step could not hide.
   */
  allReduceInBackwardSeconds: number;
  /** Whole-run throughput: all workers' images over this step's wall time. */
  imagesPerSecond: number;
  /** Learning rate of each optimizer group. */
  learningRates: Record<string, number>;
}

/** Optional observers (metrics, tests); the loop never depends on them. */
export interface TrainHooks {
  onStep?(info: StepInfo): void;
  onEpoch?(epoch: number, means: Record<string, number>): void;
  onCheckpoint?(dir: string): void;
  onDivergence?(kind: 'nan' | 'explosion'): void;
}

export interface TrainOptions {
  config: ExperimentConfig;
  runDir: string;
  /** A checkpoint directory, or a run directory whose newest checkpoint is used. */
  resume?: string;
  progress: Progress;
  hooks?: TrainHooks;
  /** Absent: one process, the collective is the identity. */
  collective?: StepCollective;
  /**
   * With several workers: the gradient bucket size (the ring's, default 4 MiB) and whether buckets
   * are sent during the backward pass (default) or all after it.
   */
  gradientBuckets?: { bytes: number; overlap: boolean };
  /** Aborted (Ctrl-C): finish the step in flight, save a checkpoint, return. */
  signal?: AbortSignal;
}

export interface TrainResult {
  state: TrainState;
  backend: BackendInfo;
  stoppedBy: 'completed' | 'max_steps' | 'signal';
  checkpoint: string;
}

/** Replicas compare a checksum of their weights this often. */
const CHECKSUM_EVERY = 50;

/** BatchNorm moving statistics and other non-trained state that replicas must share, ordered by stable name. */
function sharedState(model: VaeModel): tf.Variable[] {
  return [...networkVariables(Object.values(model.networks), 'nonTrainable')]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, variable]) => variable);
}

function learningRate(base: number, gamma: number, epoch: number): number {
  return base * gamma ** epoch;
}

/** Slices rows [start, end) of a batch into tensors. */
function batchTensors(batch: Batch, start: number, end: number): { images: tf.Tensor4D; labels?: tf.Tensor2D } {
  const n = end - start;
  const px = batch.size * batch.size * batch.channels;
  const images = tf.tensor4d(batch.images.subarray(start * px, end * px), [n, batch.size, batch.size, batch.channels]);
  if (batch.labelWidth === 0) return { images };
  const labels = tf.tensor2d(batch.labels.subarray(start * batch.labelWidth, end * batch.labelWidth), [n, batch.labelWidth]);
  return { images, labels };
}

/** One micro-batch's loss terms, stacked in `names` order on the device, and its share of the batch. */
interface TermPart {
  names: string[];
  values: tf.Tensor1D;
  weight: number;
}

/** The terms of a micro-batch as one tensor, in the order of `names` (the first micro-batch's) or their own. */
function stackTerms(terms: Record<string, tf.Scalar>, names: string[] | undefined, weight: number): TermPart {
  const order = names ?? Object.keys(terms);
  const missing = order.filter((n) => !terms[n]);
  if (missing.length > 0 || Object.keys(terms).length !== order.length) {
    throw new Error(`micro-batches report different loss terms: ${Object.keys(terms).join(', ')} vs ${order.join(', ')}`);
  }
  return { names: order, values: tf.tidy(() => tf.stack(order.map((n) => terms[n]!)) as tf.Tensor1D), weight };
}

/**
 * The step's loss terms, each the sum over micro-batches of weight x value: every micro-batch's
 * terms in one read from the backend, asynchronous (a GPU backend has no synchronous read), summed
 * here in double precision. Disposes the parts.
 */
async function readTerms(parts: readonly TermPart[]): Promise<Record<string, number>> {
  const terms: Record<string, number> = {};
  if (parts.length === 0) return terms;
  const all = tf.tidy(() => tf.concat(parts.map((p) => p.values)));
  let values: Float32Array;
  try {
    values = (await all.data()) as Float32Array;
  } finally {
    tf.dispose([all, ...parts.map((p) => p.values)]);
  }
  const names = parts[0]!.names;
  parts.forEach(({ weight }, i) => {
    names.forEach((name, k) => {
      terms[name] = (terms[name] ?? 0) + weight * values[i * names.length + k]!;
    });
  });
  return terms;
}

/** Images shown in the reconstruction grid every epoch. */
const PREVIEW_IMAGES = 8;

/** The first `k` images of the first batch: fixed real images to reconstruct every epoch. */
async function previewBatch(batches: AsyncIterable<Batch>, k: number): Promise<Batch> {
  for await (const b of batches) {
    const n = Math.min(k, b.n);
    const px = b.size * b.size * b.channels;
    return {
      ...b,
      n,
      images: b.images.slice(0, n * px),
      labels: b.labels.slice(0, n * b.labelWidth),
      indices: b.indices.slice(0, n),
    };
  }
  throw new Error('the training split yielded no batch: is the dataset smaller than one batch with drop_last?');
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { config: cfg, runDir, progress } = opts;
  const collective = opts.collective ?? new LocalCollective();
  const { rank, worldSize } = collective;
  const { bytes: bucketBytes, overlap: overlapRequested } = opts.gradientBuckets ?? { bytes: DEFAULT_BUCKET_BYTES, overlap: true };
  const overlap = worldSize > 1 && overlapRequested;
  const isChief = rank === 0;
  const log = (m: string): void => {
    if (isChief) progress.info(m);
  };

  // ---- setup --------------------------------------------------------------------------------
  // Every worker names its own device: on GPUs each has its own adapter.
  const logDevice = (m: string): void => progress.info(worldSize > 1 ? `rank ${rank}: ${m}` : m);
  const backend = await initBackend(cfg.train.backend, logDevice, {
    threads: cfg.train.threads,
    allowSoftwareGpu: cfg.train.allow_software_gpu,
  });
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
  const adams = Object.fromEntries(Object.entries(optimizers).map(([group, o]) => [group, o.adam]));
  const allWeights = [...Object.values(optimizers).flatMap((o) => Object.values(o.variables)), ...sharedState(model)];
  // BatchNorm moving statistics move once per optimizer step, from the whole global batch.
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
  if (opts.resume) {
    const dir = resolveResumeCheckpoint(opts.resume, log, isChief);
    state = { ...restoreCheckpoint(dir, model, adams), worldSize };
    log(`resumed from ${dir}: epoch ${state.epoch + 1}, step ${state.step}`);
  } else {
    await broadcastWeights(collective, allWeights);
  }

  const preview = isChief ? await previewBatch(loader.batches(0), PREVIEW_IMAGES) : undefined;
  const checkpointRoot = join(runDir, 'checkpoints');
  if (isChief) {
    mkdirSync(runDir, { recursive: true });
    writeFileAtomic(join(runDir, 'config.yaml'), configToYaml(cfg));
    log(`run directory: ${runDir}`);
  }
  const metricsFile = join(runDir, 'metrics.jsonl');
  const rewound = isChief && opts.resume ? rewindMetrics(metricsFile, state.step) : 0;
  if (rewound > 0) log(`metrics.jsonl: dropped ${rewound} record(s) after step ${state.step}, which run again now`);
  // metrics.jsonl counts epochs from 1, as the console does (metrics-log.ts).
  const record = (line: object): void => {
    if (isChief) appendFileSync(metricsFile, `${JSON.stringify(line)}\n`);
  };
  record({
    kind: 'start',
    step: state.step,
    epoch: state.epoch + 1,
    backend: backend.name,
    gpu: backend.gpu,
    world_size: worldSize,
    resumed_from: opts.resume ?? null,
    host: hostname(),
    cpus: cpus().length,
    node: process.version,
    time: new Date().toISOString(),
  });
  const monitor = new DivergenceMonitor(cfg.train.divergence_factor);
  const maxSteps = cfg.train.max_steps > 0 ? cfg.train.max_steps : Infinity;
  const totalSteps = Math.min(cfg.train.epochs * loader.stepsPerEpoch, maxSteps);
  let lastCheckpoint = '';
  let peakTensorBytes = 0;
  let stoppedBy: TrainResult['stoppedBy'] = 'completed';

  /** `epochEnd`: lastLoss is an epoch mean, comparable with bestLoss; mid-epoch saves never become 'best'. */
  const checkpoint = async (epochEnd: boolean): Promise<void> => {
    state.savedAt = new Date().toISOString();
    const isBest = epochEnd && state.lastLoss < state.bestLoss;
    if (isBest) state.bestLoss = state.lastLoss;
    if (!isChief) return;
    lastCheckpoint = await saveCheckpoint(checkpointRoot, { model, optimizers: adams, state }, cfg.output.keep_last, isBest);
    opts.hooks?.onCheckpoint?.(lastCheckpoint);
  };

  const release = async (): Promise<void> => {
    await loader.close();
    await dataset.close();
    for (const opt of Object.values(optimizers)) opt.dispose();
    model.dispose();
  };
  try {
    // ---- epochs ------------------------------------------------------------------------------
    while (state.epoch < cfg.train.epochs && state.step < maxSteps) {
      const lr = learningRate(cfg.train.lr, cfg.train.scheduler_gamma, state.epoch);
      for (const [group, adam] of Object.entries(adams)) {
        adam.lr = learningRate(
          group === 'discriminator' ? cfg.train.lr_discriminator : cfg.train.lr,
          cfg.train.scheduler_gamma,
          state.epoch,
        );
      }
      const epochSums: Record<string, number> = {};
      let epochSteps = 0;
      const epochStart = performance.now();
      let waitStart = performance.now();

      for await (const batch of loader.batches(state.epoch, state.stepInEpoch)) {
        // The loader's work on the next batch, queued as this one was handed over, runs now and counts
        // as data wait: not inside the step, where it would stall the all-reduce's progress.
        await new Promise((resolve) => setImmediate(resolve));
        const stepStart = performance.now();
        const dataWaitSeconds = (stepStart - waitStart) / 1000;

        // ---- forward/backward over micro-batches, gradients summed with weights n_i / n; with
        // several workers, the last micro-batch's gradients go out in buckets as backward makes them ----
        const grads: Record<string, tf.NamedTensorMap> = {};
        // Each micro-batch's terms stay on the device until the step reads them all at once.
        const termParts: TermPart[] = [];
        const microsPerRank = Math.ceil(batch.n / micro);
        const reducer = overlap ? new OverlappedReducer(collective, bucketBytes / 4) : undefined;
        for (let i = 0; i < microsPerRank; i++) {
          // The last micro-batch's gradients join the sum of the others in the reducer, bucket by bucket.
          const bucketed = reducer !== undefined && i === microsPerRank - 1;
          const start = i * micro;
          const end = Math.min(batch.n, start + micro);
          const weight = (end - start) / batch.n;
          const inputs = batchTensors(batch, start, end);
          const ctx = {
            step: state.step,
            minibatchFraction: cfg.train.batch_size / loader.datasetSize,
            // Keyed by the micro-batch's place in the global batch: independent of the worker count.
            noise: stepNoise(cfg.train.seed, Stream.noise, state.step, rank * microsPerRank + i),
            training: true,
          };
          let result: ReturnType<typeof computeGradients>;
          try {
            result = bucketed
              ? await reducer.run((onGradient) => gradientWalk(model, inputs, ctx, onGradient), grads, weight)
              : computeGradients(model, inputs, ctx);
          } catch (e) {
            const error = translateBackendError(
              e,
              `training step ${state.step + 1} (micro-batch of ${end - start} at ${cfg.model.image_size}x${cfg.model.image_size})`,
            );
            try {
              tf.dispose([inputs.images, inputs.labels, ...termParts.map((p) => p.values)] as tf.TensorContainer);
            } catch {
              // A backend that failed mid-step may not free memory any more; its error is the one to report.
            }
            throw error;
          }
          // Activations are freed by now; weights, optimizer moments and gradients are what stays.
          peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes);
          if (!bucketed) accumulateGradients(grads, result.groups, weight);
          termParts.push(stackTerms(result.terms, termParts[0]?.names, weight));
          tf.dispose([inputs.images, inputs.labels, result.groups, result.terms] as tf.TensorContainer);
        }

        // ---- all-reduce (identity with one worker) ----
        // The terms, read once per step: the all-reduce averages them and the checks below need them.
        const terms = await readTerms(termParts);
        const reduceStart = performance.now();
        const statistics = norms.map((layer) => layer.pendingStatistics());
        const reduced = await averageAcrossWorkers(collective, grads, terms, statistics, opts.signal?.aborted ?? false, reducer);
        const { bytes: allReduceBytes, stop } = reduced;
        const allReduceSeconds = worldSize > 1 ? (performance.now() - reduceStart) / 1000 : 0;
        // Part of the all-reduce by definition; the clamp absorbs rounding between the ring thread's clock and this one's.
        const allReduceWaitMs = Math.min(reduced.waitMs, allReduceSeconds * 1000);
        const disposePooled = (): void => {
          if (worldSize > 1) tf.dispose(reduced.statistics.flatMap((s) => [s.shiftedSum, s.shiftedSquares]));
        };

        // ---- checks before the update: a bad step never reaches the weights ----
        const problem = monitor.check(terms);
        if (problem) {
          tf.dispose(grads as tf.TensorContainer);
          for (const layer of norms) layer.discardStatistics();
          disposePooled();
          opts.hooks?.onDivergence?.(problem.kind);
          throw problem.error(state, latestCheckpoint(checkpointRoot), cfg);
        }

        // ---- optimizer, and the moving statistics of the global batch ----
        applyGradients(optimizers, grads);
        tf.dispose(grads as tf.TensorContainer);
        norms.forEach((layer, i) => layer.commitStatistics(reduced.statistics[i]));
        disposePooled();
        state.step++;
        state.stepInEpoch++;
        state.lastLoss = terms.loss ?? Object.values(terms)[0] ?? NaN;
        if (state.step % CHECKSUM_EVERY === 0) await checkReplicasAgree(collective, allWeights, state.step);

        // ---- metrics ----
        const stepSeconds = (performance.now() - stepStart) / 1000;
        const images = batch.n;
        const info: StepInfo = {
          step: state.step,
          epoch: state.epoch,
          terms,
          lr,
          images,
          stepSeconds,
          dataWaitSeconds,
          allReduceSeconds,
          allReduceBytes,
          allReduceWaitSeconds: allReduceWaitMs / 1000,
          allReducePauseSeconds: (reducer?.pausedMs ?? 0) / 1000,
          allReduceInBackwardSeconds: (reducer?.commWorkMs ?? 0) / 1000,
          imagesPerSecond: (images * worldSize) / Math.max(stepSeconds + dataWaitSeconds, 1e-9),
          learningRates: Object.fromEntries(Object.entries(optimizers).map(([g, o]) => [g, o.lr])),
        };
        for (const [k, v] of Object.entries(terms)) epochSums[k] = (epochSums[k] ?? 0) + v;
        epochSteps++;
        opts.hooks?.onStep?.(info);
        record({
          kind: 'step',
          step: state.step,
          epoch: state.epoch + 1,
          terms,
          lr,
          images_per_s: info.imagesPerSecond,
          step_ms: stepSeconds * 1000,
          data_wait_ms: dataWaitSeconds * 1000,
          allreduce_ms: allReduceSeconds * 1000,
          allreduce_wait_ms: allReduceWaitMs,
          allreduce_pause_ms: info.allReducePauseSeconds * 1000,
          allreduce_in_backward_ms: info.allReduceInBackwardSeconds * 1000,
          peak_tensor_mb: peakTensorBytes / 2 ** 20,
          rss_mb: process.memoryUsage().rss / 2 ** 20,
          time: new Date().toISOString(),
        });
        if (isChief) {
          progress.step({
            epoch: state.epoch,
            epochs: cfg.train.epochs,
            stepInEpoch: state.stepInEpoch - 1,
            stepsPerEpoch: loader.stepsPerEpoch,
            step: state.step - 1,
            totalSteps,
            terms,
            imagesPerSecond: info.imagesPerSecond,
            lr,
          });
        }
        const everySteps = cfg.output.checkpoint_every_steps;
        if (everySteps > 0 && state.step % everySteps === 0 && state.stepInEpoch < loader.stepsPerEpoch && state.step < maxSteps)
          await checkpoint(false);
        if (state.step >= maxSteps) {
          stoppedBy = 'max_steps';
          break;
        }
        if (stop) {
          stoppedBy = 'signal';
          break;
        }
        waitStart = performance.now();
      }

      // ---- end of epoch (or of the run): pictures, epoch means, checkpoint ----
      const finishedEpoch = state.stepInEpoch >= loader.stepsPerEpoch;
      const means = Object.fromEntries(Object.entries(epochSums).map(([k, v]) => [k, v / Math.max(1, epochSteps)]));
      const seconds = (performance.now() - epochStart) / 1000;
      record({
        kind: 'epoch',
        epoch: state.epoch + 1,
        step: state.step,
        complete: finishedEpoch,
        means,
        lr,
        images_per_s: (epochSteps * cfg.train.batch_size) / Math.max(seconds, 1e-9),
        seconds,
        time: new Date().toISOString(),
      });
      opts.hooks?.onEpoch?.(state.epoch, means);
      if (preview) {
        progress.done();
        await writeEpochPictures({
          model,
          config: cfg,
          runDir,
          epoch: state.epoch,
          preview,
          labelNames: dataset.labelNames,
          metricsFile,
          batchSize: micro,
        });
      }
      // The saved state names what runs next: the following epoch once this one is complete.
      const ranEpoch = state.epoch;
      // "Best" compares epoch means: one step's loss is too noisy to pick a checkpoint by.
      if (epochSteps > 0) state.lastLoss = means.loss ?? state.lastLoss;
      if (finishedEpoch) {
        state.epoch++;
        state.stepInEpoch = 0;
      }
      const due = finishedEpoch && ((ranEpoch + 1) % cfg.output.checkpoint_every_epochs === 0 || state.epoch === cfg.train.epochs);
      if (due || stoppedBy !== 'completed') await checkpoint(finishedEpoch);
      if (stoppedBy !== 'completed') break;
    }
    await release();
    return { state, backend, stoppedBy, checkpoint: lastCheckpoint };
  } catch (e) {
    // After a wasm trap the backend cannot even free memory: report the cause, not the cleanup.
    await release().catch(() => {});
    throw e;
  }
}
