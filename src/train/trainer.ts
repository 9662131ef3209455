// The training loop, top to bottom: set up (./setup.ts), then for each step: the micro-batches'
// forward and backward passes, the one synchronisation across workers, checks, the optimizer, the
// step's record; at the end of each epoch: pictures and a checkpoint. The same loop runs in
// `medvae train` (one process) and in every worker of `medvae-dist` (with the ring collective).
import { tf } from '../util/tf.ts';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.ts';
import { trainingCorruption } from '../config/validate.ts';
import type { BackendInfo } from '../backend/index.ts';
import { latestCheckpoint, type TrainState } from '../run/checkpoint.ts';
import { createProgress, type Progress } from '../run/progress.ts';
import { LocalCollective } from '../collective/collective.ts';
import { DEFAULT_BUCKET_BYTES } from '../collective/ring-options.ts';
import { applyGradients } from './step.ts';
import { checkReplicasAgree, StepSync, type StepCollective } from './sync.ts';
import { gradientPass, splitScalars } from './gradient-pass.ts';
import { progressReport, stepInfo, stepLine, type StepInfo } from './step-record.ts';
import { DivergenceMonitor } from './divergence.ts';
import { Checkpointer, endEpoch, EpochTotals } from './epoch-end.ts';
import { setUpRun } from './setup.ts';

export type { StepInfo } from './step-record.ts';

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
  /** Default: the console's progress line (a live bar on a terminal), every train.log_every steps. */
  progress?: Progress;
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

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { config: cfg, runDir, hooks } = opts;
  const progress = opts.progress ?? createProgress('auto', { everySteps: cfg.train.log_every });
  const collective = opts.collective ?? new LocalCollective();
  const { rank, worldSize } = collective;
  const buckets = opts.gradientBuckets ?? { bytes: DEFAULT_BUCKET_BYTES, overlap: true };
  const sync = new StepSync(collective, buckets.bytes, buckets.overlap);
  const run = await setUpRun(cfg, runDir, opts.resume, collective, progress);
  const { loader, model, optimizers, norms, state } = run;
  const checkpointRoot = join(runDir, 'checkpoints');
  const checkpoints = new Checkpointer(checkpointRoot, run, cfg, rank === 0, hooks?.onCheckpoint);
  const monitor = new DivergenceMonitor(cfg.train.divergence_factor);
  const maxSteps = cfg.train.max_steps > 0 ? cfg.train.max_steps : Infinity;
  const totalSteps = Math.min(cfg.train.epochs * loader.stepsPerEpoch, maxSteps);
  const minibatchFraction = cfg.train.batch_size / loader.datasetSize;
  const corrupt = trainingCorruption(cfg.train);
  let peakTensorBytes = 0;
  let stoppedBy: TrainResult['stoppedBy'] = 'completed';

  try {
    while (state.epoch < cfg.train.epochs && state.step < maxSteps) {
      for (const optimizer of Object.values(optimizers)) optimizer.scheduleEpoch(cfg.train.scheduler_gamma, state.epoch);
      const learningRates = Object.fromEntries(Object.entries(optimizers).map(([group, o]) => [group, o.lr]));
      const totals = new EpochTotals();
      let waitStart = performance.now();

      for await (const batch of loader.batches(state.epoch, state.stepInEpoch)) {
        // The loader's work on the next batch, queued as this one was handed over, runs now and counts
        // as data wait: not inside the step, where it would stall the all-reduce's progress.
        await new Promise((resolve) => setImmediate(resolve));
        const computeStart = performance.now();

        // ---- forward and backward over micro-batches (the last one's gradients may leave in buckets)
        const { micro } = run;
        const pass = await gradientPass({
          model,
          sync,
          batch,
          rank,
          micro,
          step: state.step,
          seed: cfg.train.seed,
          minibatchFraction,
          corrupt,
        });
        peakTensorBytes = Math.max(peakTensorBytes, pass.tensorBytes);
        const computeEnd = performance.now();

        // ---- the one synchronisation: gradients, terms and BatchNorm statistics averaged over workers
        const statistics = norms.map((layer) => layer.pendingStatistics());
        const synced = await sync.average(pass.grads, pass.scalars, statistics, opts.signal?.aborted ?? false);
        const { terms, objectives } = splitScalars(pass.scalars);

        // ---- checks before the update: a bad step never reaches the weights
        const problem = monitor.check(terms);
        if (problem) {
          tf.dispose(pass.grads as tf.TensorContainer);
          for (const layer of norms) layer.discardStatistics();
          sync.disposeStatistics(synced);
          hooks?.onDivergence?.(problem.kind);
          throw problem.error(state, latestCheckpoint(checkpointRoot), cfg);
        }

        // ---- the optimizer, and the moving statistics of the global batch
        applyGradients(optimizers, pass.grads);
        tf.dispose(pass.grads as tf.TensorContainer);
        norms.forEach((layer, i) => layer.commitStatistics(synced.statistics[i]));
        sync.disposeStatistics(synced);
        state.step++;
        state.stepInEpoch++;
        state.lastLoss = terms.loss ?? Object.values(terms)[0] ?? NaN;
        if (state.step % CHECKSUM_EVERY === 0) await checkReplicasAgree(collective, run.allWeights, state.step);

        // ---- the step's record: hooks, metrics.jsonl, the console
        const clock = { waitStart, computeStart, computeEnd, end: performance.now() };
        const images = batch.n;
        const info = stepInfo({ ...state, terms, objectives, learningRates, images, worldSize, clock, sync: synced, peakTensorBytes });
        totals.add(terms);
        hooks?.onStep?.(info);
        run.record(stepLine(info));
        if (rank === 0) progress.step(progressReport(info, cfg.train.epochs, state.stepInEpoch, loader.stepsPerEpoch, totalSteps));

        const everySteps = cfg.output.checkpoint_every_steps;
        if (everySteps > 0 && state.step % everySteps === 0 && state.stepInEpoch < loader.stepsPerEpoch && state.step < maxSteps)
          await checkpoints.save(false);
        if (state.step >= maxSteps) stoppedBy = 'max_steps';
        else if (synced.stop) stoppedBy = 'signal';
        if (stoppedBy !== 'completed') break;
        waitStart = performance.now();
      }

      // ---- end of epoch (or of the run): its record and pictures, a checkpoint when due
      const complete = await endEpoch(run, cfg, totals, Object.values(learningRates)[0]!, progress, hooks?.onEpoch);
      if ((complete && checkpoints.due(state)) || stoppedBy !== 'completed') await checkpoints.save(complete);
      if (stoppedBy !== 'completed') break;
    }
    await run.release();
    return { state, backend: run.backend, stoppedBy, checkpoint: checkpoints.last };
  } catch (e) {
    // After a wasm trap the backend cannot even free memory: report the cause, not the cleanup.
    await run.release().catch(() => {});
    throw e;
  }
}
