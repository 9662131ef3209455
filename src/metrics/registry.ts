// Prometheus metrics of one training process: `medvae train`, or one `medvae-dist` worker.
//
// Every metric lives in this class's own prom-client Registry (never the global one), so several
// instances can coexist in one process (tests, an agent hosting workers in-process).
//
// Which series carry a `rank` label (see ./aggregate.ts for how medvae-dist merges workers):
//  - Global metrics (names in GLOBAL_METRIC_NAMES) have no rank label. They describe the run as a
//    whole and are combined across workers by their prom-client `aggregator`:
//      medvae_train_steps_total           counter  max  optimizer steps done by this process
//      medvae_train_step                  gauge    max  global step reached (counts steps before a resume)
//      medvae_train_epochs_total          counter  max  epochs finished by this process
//      medvae_train_epoch                 gauge    max  epochs completed (counts epochs before a resume)
//      medvae_train_images_total          counter  sum  images consumed (each worker counts its shard)
//      medvae_train_images_per_second     gauge    sum  recent training throughput
//      medvae_learning_rate{group}        gauge    max  learning rate of each optimizer group
//      medvae_last_checkpoint_timestamp_seconds gauge max  unix time of the last checkpoint written
//      medvae_restarts_total              counter  sum  resumes / worker restarts
//    Data-parallel workers do the same optimizer steps in lock-step, so steps and epochs take the
//    max (summing would multiply them by the worker count), while images are disjoint shards and add.
//  - Per-worker metrics carry `rank` (0 in a single process) and pass through a merge untouched:
//      medvae_loss{rank,network,term}, medvae_train_step_duration_seconds{rank},
//      medvae_data_wait_seconds{rank}, medvae_allreduce_duration_seconds{rank},
//      medvae_allreduce_bytes_total{rank}, medvae_tensors{rank}, medvae_tensor_bytes{rank},
//      medvae_divergence_events_total{rank,kind}, medvae_worker_up{rank,device},
//      and prom-client's process/nodejs default metrics.
// Sum them in PromQL when a run-wide value is wanted, e.g. `sum without (rank) (...)`.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Aggregator } from 'prom-client';

/** Thrown when the trainer reports a value a metric cannot hold (negative time, fractional count...). */
export class MetricsInputError extends Error {
  override name = 'MetricsInputError';
}

/** Metrics without a rank label: combined across workers by their aggregator, see the header. */
export const GLOBAL_METRIC_NAMES: ReadonlySet<string> = new Set([
  'medvae_train_steps_total',
  'medvae_train_step',
  'medvae_train_epochs_total',
  'medvae_train_epoch',
  'medvae_train_images_total',
  'medvae_train_images_per_second',
  'medvae_learning_rate',
  'medvae_last_checkpoint_timestamp_seconds',
  'medvae_restarts_total',
]);

/**
 * prom-client's default Node metrics include gauges whose names end in `_total`
 * (nodejs_active_handles_total, ...), which `promtool check metrics` rejects because `_total` is
 * reserved for counters. Each is the sum over the `type` label of the gauge of the same name
 * without `_total`, which stays, so nothing is lost by leaving them out.
 */
export const DEFAULT_METRICS_LEFT_OUT = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/** Step time of tf.js training: ~5 ms (tiny model on a GPU) to a minute (large model on wasm). */
export const STEP_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Waiting for the loader: ~0 when prefetch keeps up, up to seconds when decode starves the step. */
export const DATA_WAIT_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Gradient all-reduce over the control channel: a millisecond on one host to seconds across hosts. */
export const ALLREDUCE_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What a process reports after each optimizer step. */
export interface StepReport {
  /** Global optimizer step reached by this update, 1-based, counting steps done before a resume. */
  step: number;
  /** Images this process consumed in the step: its share of the global batch. */
  images: number;
  /** Wall time of the whole step, from asking the loader for a batch to updated weights (includes
   *  dataWaitSeconds and any all-reduce), in seconds. */
  stepSeconds: number;
  /** Part of stepSeconds spent waiting for the loader: high means decode starves the step. */
  dataWaitSeconds: number;
  /**
   * Loss values of this step, network -> term -> value, exported as medvae_loss{network,term}.
   * Build it with lossesByNetwork(terms, objectives). NaN and Inf are kept: they are what the
   * divergence alerts look for.
   */
  losses: Record<string, Record<string, number>>;
  /** Learning rate of each optimizer group, by ParamGroup.name. */
  learningRates: Record<string, number>;
}

/** medvae_loss's `network` value for the model's logging terms, which belong to no single network. */
export const ALL_NETWORKS = 'all';

/**
 * StepReport.losses from a step's ModelLosses read back as numbers: the logging terms under network
 * "all" (loss, reconstruction, kld, ...), and each optimizer group's objective under its group
 * ('model' for the plain VAEs; 'encoder', 'decoder', 'discriminator' for VAE-GAN) as term "objective".
 */
export function lossesByNetwork(terms: Record<string, number>, objectives: Record<string, number>): Record<string, Record<string, number>> {
  const losses: Record<string, Record<string, number>> = { [ALL_NETWORKS]: { ...terms } };
  for (const [group, value] of Object.entries(objectives)) losses[group] = { ...losses[group], objective: value };
  return losses;
}

/** What tf.memory() returns, in the fields these metrics use (pass tf.memory() itself). */
export interface TensorMemory {
  numTensors: number;
  numBytes: number;
}

/** Anything that renders Prometheus exposition text: a Registry, TrainingMetrics, AgentMetrics. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/**
 * One metric as `Registry.getMetricsAsJSON()` returns it: what a worker sends to the agent.
 * Structured clone (fork with serialization: 'advanced') or msgpackr keep NaN and Inf; a JSON
 * channel turns them into null, which the merge reads back as NaN.
 */
export interface MetricSnapshotEntry {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  aggregator: Aggregator;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}
export type MetricSnapshot = MetricSnapshotEntry[];

export interface TrainingMetricsOptions {
  /** Worker rank, the value of every `rank` label; 0 for `medvae train`. */
  rank?: number;
  /** Steps' wall time over which medvae_train_images_per_second averages (default 10 s). */
  throughputWindowSeconds?: number;
  /** Add prom-client's process and Node metrics, labelled with the rank (default true). */
  defaultMetrics?: boolean;
}

function requireNonNegative(field: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new MetricsInputError(`metrics: ${field} must be a finite number >= 0, got ${value}`);
  }
}

function requireCount(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new MetricsInputError(`metrics: ${field} must be an integer >= 0, got ${value}`);
  }
}

/** medvae_worker_up: shared by TrainingMetrics (single process) and AgentMetrics (dist). */
export function workerUpGauge(registry: Registry): Gauge<'rank' | 'device'> {
  return new Gauge({
    name: 'medvae_worker_up',
    help: 'Whether the training worker of this rank is up (1) or down (0), with the device it trains on.',
    labelNames: ['rank', 'device'] as const,
    registers: [registry],
  });
}

/** medvae_restarts_total: shared by TrainingMetrics (single process) and AgentMetrics (dist). */
export function restartsCounter(registry: Registry): Counter {
  return new Counter({
    name: 'medvae_restarts_total',
    help: 'Times training resumed from a checkpoint or a worker was restarted.',
    aggregator: 'sum',
    registers: [registry],
  });
}

/** Keeps medvae_worker_up at one device per rank: a rank restarted on another device drops the old series. */
export class WorkerUpTracker {
  private readonly deviceOfRank = new Map<number, string>();
  constructor(private readonly gauge: Gauge<'rank' | 'device'>) {}

  set(rank: number, device: string, up: boolean): void {
    requireCount('workerUp rank', rank);
    const previous = this.deviceOfRank.get(rank);
    if (previous !== undefined && previous !== device) this.gauge.remove({ rank: String(rank), device: previous });
    this.deviceOfRank.set(rank, device);
    this.gauge.set({ rank: String(rank), device }, up ? 1 : 0);
  }
}

/**
 * Images per second over the most recent steps whose wall time covers the window: a throughput
 * that follows changes within seconds but does not jump with every step.
 */
export class ThroughputWindow {
  private readonly steps: { images: number; seconds: number }[] = [];
  private images = 0;
  private seconds = 0;
  constructor(private readonly windowSeconds: number) {
    if (!(windowSeconds > 0)) throw new MetricsInputError(`metrics: throughputWindowSeconds must be > 0, got ${windowSeconds}`);
  }

  /** Adds a step and returns images per second over the window (0 until some time has passed). */
  add(images: number, seconds: number): number {
    this.steps.push({ images, seconds });
    this.images += images;
    this.seconds += seconds;
    // Drop the oldest step while the newer ones still cover the window.
    while (this.steps.length > 1 && this.seconds - this.steps[0].seconds >= this.windowSeconds) {
      const oldest = this.steps.shift()!;
      this.images -= oldest.images;
      this.seconds -= oldest.seconds;
    }
    return this.seconds > 0 ? this.images / this.seconds : 0;
  }
}

/**
 * The metrics a trainer updates. Call stepDone after every optimizer step, epochDone after every
 * epoch, allReduceDone after every gradient all-reduce, tensorMemory(tf.memory()) after a step,
 * checkpointSaved after writing a checkpoint, divergence when a loss is NaN/Inf or explodes,
 * restart when resuming from a checkpoint. In `medvae train`, also workerUp(0, device, true);
 * in medvae-dist the agent owns medvae_worker_up and workers must not call workerUp.
 */
export class TrainingMetrics implements MetricsSource {
  readonly registry = new Registry();
  readonly rank: number;
  private readonly rankLabel: { rank: string };
  private readonly throughput: ThroughputWindow;
  private readonly workerUpTracker: WorkerUpTracker;

  private readonly steps: Counter;
  private readonly step: Gauge;
  private readonly epochs: Counter;
  private readonly epoch: Gauge;
  private readonly images: Counter;
  private readonly imagesPerSecond: Gauge;
  private readonly learningRate: Gauge<'group'>;
  private readonly lastCheckpoint: Gauge;
  private readonly restarts: Counter;
  private readonly loss: Gauge<'rank' | 'network' | 'term'>;
  private readonly stepSeconds: Histogram<'rank'>;
  private readonly dataWaitSeconds: Histogram<'rank'>;
  private readonly allReduceSeconds: Histogram<'rank'>;
  private readonly allReduceWaitSeconds: Histogram<'rank'>;
  private readonly allReduceBytes: Counter<'rank'>;
  private readonly tensors: Gauge<'rank'>;
  private readonly tensorBytes: Gauge<'rank'>;
  private readonly divergences: Counter<'rank' | 'kind'>;

  constructor(options: TrainingMetricsOptions = {}) {
    const { rank = 0, throughputWindowSeconds = 10, defaultMetrics = true } = options;
    requireCount('rank', rank);
    this.rank = rank;
    this.rankLabel = { rank: String(rank) };
    this.throughput = new ThroughputWindow(throughputWindowSeconds);
    const registers = [this.registry];
    const perRank = ['rank'] as const;

    this.steps = new Counter({
      name: 'medvae_train_steps_total',
      help: 'Optimizer steps done by this process.',
      aggregator: 'max',
      registers,
    });
    this.step = new Gauge({
      name: 'medvae_train_step',
      help: 'Global optimizer step reached, including steps done before a resume.',
      aggregator: 'max',
      registers,
    });
    this.epochs = new Counter({
      name: 'medvae_train_epochs_total',
      help: 'Epochs finished by this process.',
      aggregator: 'max',
      registers,
    });
    this.epoch = new Gauge({
      name: 'medvae_train_epoch',
      help: 'Epochs completed, including epochs done before a resume.',
      aggregator: 'max',
      registers,
    });
    this.images = new Counter({
      name: 'medvae_train_images_total',
      help: 'Training images consumed (each worker counts its own shard).',
      aggregator: 'sum',
      registers,
    });
    this.imagesPerSecond = new Gauge({
      name: 'medvae_train_images_per_second',
      help: 'Training throughput in images per second over the last steps.',
      aggregator: 'sum',
      registers,
    });
    this.learningRate = new Gauge({
      name: 'medvae_learning_rate',
      help: 'Learning rate of each optimizer group.',
      labelNames: ['group'] as const,
      aggregator: 'max',
      registers,
    });
    this.lastCheckpoint = new Gauge({
      name: 'medvae_last_checkpoint_timestamp_seconds',
      help: 'Unix time at which the last checkpoint was written (0: none yet).',
      aggregator: 'max',
      registers,
    });
    this.restarts = restartsCounter(this.registry);

    this.loss = new Gauge({
      name: 'medvae_loss',
      help: 'Loss term of the last step, per network (optimizer group) and term.',
      labelNames: ['rank', 'network', 'term'] as const,
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'medvae_train_step_duration_seconds',
      help: 'Wall time of one optimizer step, data wait and all-reduce included.',
      labelNames: perRank,
      buckets: STEP_SECONDS_BUCKETS,
      registers,
    });
    this.dataWaitSeconds = new Histogram({
      name: 'medvae_data_wait_seconds',
      help: 'Time a step waited for the data loader.',
      labelNames: perRank,
      buckets: DATA_WAIT_SECONDS_BUCKETS,
      registers,
    });
    this.allReduceSeconds = new Histogram({
      name: 'medvae_allreduce_duration_seconds',
      help: 'Time a step spent in the gradient all-reduce after its backward pass (buckets sent during it are hidden behind it).',
      labelNames: perRank,
      buckets: ALLREDUCE_SECONDS_BUCKETS,
      registers,
    });
    this.allReduceWaitSeconds = new Histogram({
      name: 'medvae_allreduce_wait_seconds',
      help: 'Part of an all-reduce spent waiting for the first data of the peer that sends to this worker: the lag of a straggler, not transfer.',
      labelNames: perRank,
      buckets: ALLREDUCE_SECONDS_BUCKETS,
      registers,
    });
    this.allReduceBytes = new Counter({
      name: 'medvae_allreduce_bytes_total',
      help: 'Gradient bytes this worker contributed to all-reduces.',
      labelNames: perRank,
      registers,
    });
    this.tensors = new Gauge({
      name: 'medvae_tensors',
      help: 'Tensors held by tf.js in this process (tf.memory().numTensors).',
      labelNames: perRank,
      registers,
    });
    this.tensorBytes = new Gauge({
      name: 'medvae_tensor_bytes',
      help: 'Bytes of tensors held by tf.js in this process (tf.memory().numBytes).',
      labelNames: perRank,
      registers,
    });
    this.divergences = new Counter({
      name: 'medvae_divergence_events_total',
      help: 'Steps whose loss was NaN/Inf (kind="nan") or exploded past divergence_factor (kind="explosion").',
      labelNames: ['rank', 'kind'] as const,
      registers,
    });
    this.workerUpTracker = new WorkerUpTracker(workerUpGauge(this.registry));

    // Series that exist from the start, so that rate() and the alerts see a 0 before the first event.
    for (const kind of ['nan', 'explosion'] as const) this.divergences.inc({ ...this.rankLabel, kind }, 0);
    this.allReduceBytes.inc(this.rankLabel, 0);

    if (defaultMetrics) {
      collectDefaultMetrics({ register: this.registry, labels: this.rankLabel });
      for (const name of DEFAULT_METRICS_LEFT_OUT) this.registry.removeSingleMetric(name);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Exposition text of this process's metrics. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** What a medvae-dist worker sends to the agent (see aggregateWorkerMetrics). */
  async snapshot(): Promise<MetricSnapshot> {
    return (await this.registry.getMetricsAsJSON()) as unknown as MetricSnapshot;
  }

  stepDone(report: StepReport): void {
    requireCount('step', report.step);
    requireCount('images', report.images);
    requireNonNegative('stepSeconds', report.stepSeconds);
    requireNonNegative('dataWaitSeconds', report.dataWaitSeconds);
    for (const [group, lr] of Object.entries(report.learningRates)) requireNonNegative(`learningRates.${group}`, lr);

    this.steps.inc();
    this.step.set(report.step);
    this.images.inc(report.images);
    this.imagesPerSecond.set(this.throughput.add(report.images, report.stepSeconds));
    this.stepSeconds.observe(this.rankLabel, report.stepSeconds);
    this.dataWaitSeconds.observe(this.rankLabel, report.dataWaitSeconds);
    for (const [network, terms] of Object.entries(report.losses)) {
      for (const [term, value] of Object.entries(terms)) this.loss.set({ ...this.rankLabel, network, term }, value);
    }
    for (const [group, lr] of Object.entries(report.learningRates)) this.learningRate.set({ group }, lr);
  }

  /** @param completedEpochs epochs completed so far, 1-based, counting those before a resume. */
  epochDone(completedEpochs: number): void {
    requireCount('completedEpochs', completedEpochs);
    this.epochs.inc();
    this.epoch.set(completedEpochs);
  }

  /** @param waitSeconds of `seconds`, the time spent waiting for a slower peer */
  allReduceDone(seconds: number, bytes: number, waitSeconds: number): void {
    requireNonNegative('allReduce seconds', seconds);
    requireCount('allReduce bytes', bytes);
    requireNonNegative('allReduce wait seconds', waitSeconds);
    if (waitSeconds > seconds)
      throw new RangeError(`allReduce wait seconds must not exceed the all-reduce's ${seconds} s, got ${waitSeconds}`);
    this.allReduceSeconds.observe(this.rankLabel, seconds);
    this.allReduceWaitSeconds.observe(this.rankLabel, waitSeconds);
    this.allReduceBytes.inc(this.rankLabel, bytes);
  }

  /** Pass tf.memory() (numTensors, numBytes). */
  tensorMemory(memory: TensorMemory): void {
    requireCount('numTensors', memory.numTensors);
    requireCount('numBytes', memory.numBytes);
    this.tensors.set(this.rankLabel, memory.numTensors);
    this.tensorBytes.set(this.rankLabel, memory.numBytes);
  }

  checkpointSaved(unixSeconds: number = Date.now() / 1000): void {
    requireNonNegative('checkpoint unixSeconds', unixSeconds);
    this.lastCheckpoint.set(unixSeconds);
  }

  divergence(kind: 'nan' | 'explosion'): void {
    this.divergences.inc({ ...this.rankLabel, kind });
  }

  restart(): void {
    this.restarts.inc();
  }

  /** `medvae train` only: medvae-dist's agent reports its workers (AgentMetrics.workerUp). */
  workerUp(rank: number, device: string, up: boolean): void {
    this.workerUpTracker.set(rank, device, up);
  }
}
