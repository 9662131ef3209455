// What a finished step reports: the StepInfo the hooks see and the line metrics.jsonl keeps, both
// built here from the same numbers.
import type { StepReport } from '../run/progress.ts';
import type { SyncReport } from './sync.ts';

/** Everything a step reports, for metrics endpoints and logs. Times are seconds. */
export interface StepInfo {
  step: number;
  /** 0-based; the console and metrics.jsonl show it from 1. */
  epoch: number;
  terms: Record<string, number>;
  /** Each optimizer group's objective (the VAE-GAN's encoder, decoder and discriminator; 'model' for the others). */
  objectives: Record<string, number>;
  lr: number;
  /** Images this process trained on in the step (its share of the global batch). */
  images: number;
  /** The whole step, wall clock: waiting for the data, computing, synchronising, updating. */
  stepSeconds: number;
  /** Of stepSeconds, waiting for the loader to hand over the batch. */
  dataWaitSeconds: number;
  /** Of stepSeconds, forward and backward passes (including any communication they overlap). */
  computeSeconds: number;
  /** Of stepSeconds, waiting for the all-reduce after the backward pass (0 with one worker). */
  allReduceSeconds: number;
  allReduceBytes: number;
  /** Of allReduceSeconds, the time spent waiting for a slower peer (a straggler), not moving bytes. */
  allReduceWaitSeconds: number;
  /**
   * With overlap and a ring on the training thread: the time the backward pass stood still for it
   * (one event-loop turn at a time, which also runs whatever else is queued, e.g. a garbage
   * collection); 0 for a ring on its own thread, as medvae-dist runs it.
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
  /** The most tensor memory held between micro-batches so far in this run, bytes. */
  peakTensorBytes: number;
}

/** Wall-clock marks of one step, from performance.now() (milliseconds). */
export interface StepClock {
  waitStart: number;
  computeStart: number;
  computeEnd: number;
  end: number;
}

export type StepRecordInput = Pick<StepInfo, 'step' | 'epoch' | 'terms' | 'objectives' | 'learningRates' | 'images' | 'peakTensorBytes'> & {
  worldSize: number;
  clock: StepClock;
  sync: SyncReport;
};

export function stepInfo(r: StepRecordInput): StepInfo {
  const seconds = (from: number, to: number): number => (to - from) / 1000;
  const stepSeconds = seconds(r.clock.waitStart, r.clock.end);
  return {
    step: r.step,
    epoch: r.epoch,
    terms: r.terms,
    objectives: r.objectives,
    lr: Object.values(r.learningRates)[0] ?? NaN,
    images: r.images,
    stepSeconds,
    dataWaitSeconds: seconds(r.clock.waitStart, r.clock.computeStart),
    computeSeconds: seconds(r.clock.computeStart, r.clock.computeEnd),
    allReduceSeconds: r.sync.seconds,
    allReduceBytes: r.sync.bytes,
    allReduceWaitSeconds: r.sync.waitSeconds,
    allReducePauseSeconds: r.sync.pauseSeconds,
    allReduceInBackwardSeconds: r.sync.inBackwardSeconds,
    imagesPerSecond: (r.images * r.worldSize) / Math.max(stepSeconds, 1e-9),
    learningRates: r.learningRates,
    peakTensorBytes: r.peakTensorBytes,
  };
}

/** The step's line in metrics.jsonl (see train/README.md): epochs counted from 1, times in ms. */
export function stepLine(info: StepInfo): object {
  return {
    kind: 'step',
    step: info.step,
    epoch: info.epoch + 1,
    terms: info.terms,
    objectives: info.objectives,
    lr: info.lr,
    images_per_s: info.imagesPerSecond,
    step_ms: info.stepSeconds * 1000,
    data_wait_ms: info.dataWaitSeconds * 1000,
    compute_ms: info.computeSeconds * 1000,
    allreduce_ms: info.allReduceSeconds * 1000,
    allreduce_wait_ms: info.allReduceWaitSeconds * 1000,
    allreduce_pause_ms: info.allReducePauseSeconds * 1000,
    allreduce_in_backward_ms: info.allReduceInBackwardSeconds * 1000,
    peak_tensor_mb: info.peakTensorBytes / 2 ** 20,
    rss_mb: process.memoryUsage().rss / 2 ** 20,
    time: new Date().toISOString(),
  };
}

/** The console's view of the step: positions from 0, as StepReport counts them. */
export function progressReport(info: StepInfo, epochs: number, stepInEpoch: number, stepsPerEpoch: number, totalSteps: number): StepReport {
  const { epoch, terms, imagesPerSecond, lr } = info;
  return { epoch, epochs, stepInEpoch: stepInEpoch - 1, stepsPerEpoch, step: info.step - 1, totalSteps, terms, imagesPerSecond, lr };
}
