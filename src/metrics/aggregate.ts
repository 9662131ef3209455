// One Prometheus endpoint for a medvae-dist run: the agent's own metrics (workers up,
// restarts, its process metrics) merged with the latest snapshot each worker sent over the
// control channel (TrainingMetrics.snapshot(), i.e. Registry.getMetricsAsJSON()).
//
// Merge rule, applied through prom-client's AggregatorRegistry.aggregate:
//  - metrics in GLOBAL_METRIC_NAMES (no rank label) are combined by their own aggregator: steps and
//    epochs by max (workers step in lock-step), images and throughput by sum, see ./registry.ts;
//  - every other metric passes through unchanged: its series are told apart by their `rank` label
//    (the agent's process metrics have none, and there is one agent), so they are
//    never added together. Two inputs producing the same pass-through series means two workers
//    claim one rank (or a worker called workerUp, which only the agent may): an error.
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client';
import type { Counter } from 'prom-client';
import {
  DEFAULT_METRICS_LEFT_OUT,
  GLOBAL_METRIC_NAMES,
  MetricsInputError,
  WorkerUpTracker,
  restartsCounter,
  workerUpGauge,
} from './registry.ts';
import type { MetricSnapshot, MetricSnapshotEntry, MetricsSource } from './registry.ts';

/** A worker snapshot that cannot be merged: malformed, or colliding with another input. */
export class MetricsMergeError extends Error {
  override name = 'MetricsMergeError';
}

const METRIC_TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);

/**
 * Checks a snapshot that came over the wire has the shape getMetricsAsJSON produces, and returns it
 * with null values read as NaN: a JSON channel (child_process IPC's default serialization) turns
 * NaN and Infinity into null, and a diverged loss must still reach the NaN alert, not fail the scrape.
 */
function checkedSnapshot(snapshot: unknown, source: string): MetricSnapshot {
  if (!Array.isArray(snapshot)) throw new MetricsMergeError(`${source}: expected an array of metrics, got ${typeof snapshot}`);
  return snapshot.map((entry: unknown): MetricSnapshotEntry => {
    const metric = entry as Partial<MetricSnapshotEntry> | null;
    if (typeof metric !== 'object' || metric === null || typeof metric.name !== 'string') {
      throw new MetricsMergeError(`${source}: every metric needs a string "name"`);
    }
    if (typeof metric.type !== 'string' || !METRIC_TYPES.has(metric.type)) {
      throw new MetricsMergeError(
        `${source}: metric ${metric.name} has type ${String(metric.type)}, expected counter, gauge, histogram or summary`,
      );
    }
    if (!Array.isArray(metric.values)) throw new MetricsMergeError(`${source}: metric ${metric.name} has no "values" array`);
    const values = metric.values.map((value: Partial<MetricSnapshotEntry['values'][number]> | null) => {
      if (typeof value?.labels !== 'object' || value.labels === null) {
        throw new MetricsMergeError(`${source}: metric ${metric.name} has a value without a "labels" object`);
      }
      if (value.value === null) return { ...value, labels: value.labels, value: Number.NaN };
      if (typeof value.value !== 'number') {
        throw new MetricsMergeError(`${source}: metric ${metric.name} has a value ${JSON.stringify(value.value)}, expected a number`);
      }
      return { ...value, labels: value.labels, value: value.value };
    });
    return { ...(metric as MetricSnapshotEntry), values };
  });
}

function seriesKey(metricName: string, labels: Record<string, string | number>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((key) => `${key}=${JSON.stringify(String(labels[key]))}`);
  return `${metricName}{${sorted.join(',')}}`;
}

/**
 * Merges per-process snapshots (workers' and, optionally, the agent's) into one Registry,
 * following the merge rule in this file's header. `sources` names each input in error messages
 * (default "snapshot <index>").
 */
export function aggregateWorkerMetrics(snapshots: readonly unknown[], sources?: readonly string[]): Registry {
  const seenSeries = new Map<string, string>();
  const prepared: MetricSnapshot[] = snapshots.map((snapshot, index) => {
    const source = sources?.[index] ?? `snapshot ${index}`;
    return checkedSnapshot(snapshot, source).map((metric) => {
      if (GLOBAL_METRIC_NAMES.has(metric.name)) return metric;
      for (const value of metric.values) {
        const key = seriesKey(value.metricName ?? metric.name, value.labels);
        const other = seenSeries.get(key);
        if (other !== undefined)
          throw new MetricsMergeError(`series ${key} comes from both ${other} and ${source}: two processes claim the same rank`);
        seenSeries.set(key, source);
      }
      // Pass-through: 'sum' of series that each occur once is the series itself ('omit', the
      // aggregator of some default metrics, would drop them).
      return { ...metric, aggregator: 'sum' as const };
    });
  });
  return AggregatorRegistry.aggregate(prepared);
}

/**
 * The medvae-dist agent's metrics endpoint: call workerUp when a worker starts or exits,
 * restart when one is restarted, workerSnapshot with each snapshot a worker sends (every second
 * or every few steps is plenty), and serve this object (it is a MetricsSource).
 * A worker marked down has its last snapshot dropped, so a dead worker's numbers do not linger.
 */
export class AgentMetrics implements MetricsSource {
  readonly registry = new Registry();
  private readonly workersUp: WorkerUpTracker;
  private readonly restarts: Counter;
  private readonly snapshots = new Map<number, MetricSnapshot>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.workersUp = new WorkerUpTracker(workerUpGauge(this.registry));
    this.restarts = restartsCounter(this.registry);
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DEFAULT_METRICS_LEFT_OUT) this.registry.removeSingleMetric(name);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  workerUp(rank: number, device: string, up: boolean): void {
    this.workersUp.set(rank, device, up);
    if (!up) this.snapshots.delete(rank);
  }

  restart(): void {
    this.restarts.inc();
  }

  /** Stores the latest snapshot of a worker (validated now, so a bad one fails at its sender). */
  workerSnapshot(rank: number, snapshot: unknown): void {
    if (!Number.isInteger(rank) || rank < 0) throw new MetricsInputError(`metrics: worker rank must be an integer >= 0, got ${rank}`);
    this.snapshots.set(rank, checkedSnapshot(snapshot, `worker rank ${rank}`));
  }

  /** The merged registry: agent first, then workers by rank. */
  async merged(): Promise<Registry> {
    const ranks = [...this.snapshots.keys()].sort((a, b) => a - b);
    const own = (await this.registry.getMetricsAsJSON()) as unknown as MetricSnapshot;
    return aggregateWorkerMetrics(
      [own, ...ranks.map((rank) => this.snapshots.get(rank)!)],
      ['agent', ...ranks.map((rank) => `worker rank ${rank}`)],
    );
  }

  async metrics(): Promise<string> {
    return (await this.merged()).metrics();
  }
}
