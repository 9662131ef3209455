// TrainingMetrics: what each method does to the exposed series, checked against hand-computed values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_METRICS_LEFT_OUT,
  MetricsInputError,
  ThroughputWindow,
  TrainingMetrics,
  lossesByNetwork,
} from '../../src/metrics/registry.ts';
import type { MetricSnapshot, StepReport } from '../../src/metrics/registry.ts';

/** Value of one series in a snapshot, found by sample name and labels. */
function valueOf(snapshot: MetricSnapshot, sampleName: string, labels: Record<string, string> = {}): number | undefined {
  for (const metric of snapshot) {
    for (const value of metric.values) {
      const name = value.metricName ?? metric.name;
      if (name !== sampleName) continue;
      if (Object.entries(labels).every(([key, expected]) => String(value.labels[key]) === expected)) return value.value;
    }
  }
  return undefined;
}

const step = (overrides: Partial<StepReport> = {}): StepReport => ({
  step: 1,
  images: 16,
  stepSeconds: 0.2,
  dataWaitSeconds: 0.003,
  losses: { vae: { objective: 1.25, kld: 3 } },
  learningRates: { vae: 0.005 },
  ...overrides,
});

describe('TrainingMetrics', () => {
  it('counts steps, images and epochs and keeps the last loss and learning rate', async () => {
    const metrics = new TrainingMetrics({ rank: 3, defaultMetrics: false });
    metrics.stepDone(step({ step: 101 }));
    metrics.stepDone(
      step({
        step: 102,
        images: 10,
        stepSeconds: 0.8,
        dataWaitSeconds: 0.3,
        losses: { vae: { objective: 0.75, kld: Number.NaN } },
        learningRates: { vae: 0.004 },
      }),
    );
    metrics.epochDone(7);
    const snapshot = await metrics.snapshot();
    assert.equal(valueOf(snapshot, 'medvae_train_steps_total'), 2);
    assert.equal(valueOf(snapshot, 'medvae_train_step'), 102);
    assert.equal(valueOf(snapshot, 'medvae_train_images_total'), 26);
    assert.equal(valueOf(snapshot, 'medvae_train_epochs_total'), 1);
    assert.equal(valueOf(snapshot, 'medvae_train_epoch'), 7);
    assert.equal(valueOf(snapshot, 'medvae_loss', { rank: '3', network: 'vae', term: 'objective' }), 0.75);
    assert.ok(Number.isNaN(valueOf(snapshot, 'medvae_loss', { rank: '3', network: 'vae', term: 'kld' })));
    assert.equal(valueOf(snapshot, 'medvae_learning_rate', { group: 'vae' }), 0.004);
    // Both steps lie in the default 10 s window: 26 images over 1.0 s.
    assert.equal(valueOf(snapshot, 'medvae_train_images_per_second'), 26);
  });

  it('fills the step, data-wait and all-reduce histograms per rank', async () => {
    const metrics = new TrainingMetrics({ rank: 1, defaultMetrics: false });
    metrics.stepDone(step({ stepSeconds: 0.2, dataWaitSeconds: 0.003 }));
    metrics.stepDone(step({ stepSeconds: 3, dataWaitSeconds: 2 }));
    metrics.allReduceDone(0.02, 1000, 0);
    metrics.allReduceDone(0.3, 500, 0.2);
    const snapshot = await metrics.snapshot();
    const rank = { rank: '1' };
    assert.equal(valueOf(snapshot, 'medvae_train_step_duration_seconds_bucket', { ...rank, le: '0.1' }), 0);
    assert.equal(valueOf(snapshot, 'medvae_train_step_duration_seconds_bucket', { ...rank, le: '0.25' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_train_step_duration_seconds_bucket', { ...rank, le: '2.5' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_train_step_duration_seconds_bucket', { ...rank, le: '5' }), 2);
    assert.equal(valueOf(snapshot, 'medvae_train_step_duration_seconds_sum', rank), 3.2);
    assert.equal(valueOf(snapshot, 'medvae_data_wait_seconds_bucket', { ...rank, le: '0.0025' }), 0);
    assert.equal(valueOf(snapshot, 'medvae_data_wait_seconds_bucket', { ...rank, le: '0.005' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_data_wait_seconds_count', rank), 2);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_duration_seconds_bucket', { ...rank, le: '0.025' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_duration_seconds_bucket', { ...rank, le: '0.5' }), 2);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_bytes_total', rank), 1500);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_wait_seconds_bucket', { ...rank, le: '0.001' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_wait_seconds_bucket', { ...rank, le: '0.1' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_wait_seconds_bucket', { ...rank, le: '0.25' }), 2);
    assert.equal(valueOf(snapshot, 'medvae_allreduce_wait_seconds_sum', rank), 0.2);
  });

  it('records memory, checkpoints, divergences, restarts and the worker state', async () => {
    const metrics = new TrainingMetrics({ defaultMetrics: false });
    let snapshot = await metrics.snapshot();
    // Present before the first event, so that increase() and the alerts start from 0.
    assert.equal(valueOf(snapshot, 'medvae_divergence_events_total', { rank: '0', kind: 'nan' }), 0);
    assert.equal(valueOf(snapshot, 'medvae_restarts_total'), 0);
    metrics.tensorMemory({ numTensors: 12, numBytes: 4096 });
    metrics.checkpointSaved(1_700_000_000.5);
    metrics.divergence('nan');
    metrics.divergence('nan');
    metrics.divergence('explosion');
    metrics.restart();
    metrics.workerUp(0, 'cpu', true);
    metrics.workerUp(0, 'webgl', false);
    snapshot = await metrics.snapshot();
    assert.equal(valueOf(snapshot, 'medvae_tensors', { rank: '0' }), 12);
    assert.equal(valueOf(snapshot, 'medvae_tensor_bytes', { rank: '0' }), 4096);
    assert.equal(valueOf(snapshot, 'medvae_last_checkpoint_timestamp_seconds'), 1_700_000_000.5);
    assert.equal(valueOf(snapshot, 'medvae_divergence_events_total', { kind: 'nan' }), 2);
    assert.equal(valueOf(snapshot, 'medvae_divergence_events_total', { kind: 'explosion' }), 1);
    assert.equal(valueOf(snapshot, 'medvae_restarts_total'), 1);
    // The rank moved to another device: only the new device's series is left.
    const up = snapshot.find((metric) => metric.name === 'medvae_worker_up')!;
    assert.deepEqual(
      up.values.map((value) => [value.labels.device, value.value]),
      [['webgl', 0]],
    );
  });

  it('rejects values no metric can hold, naming the field', () => {
    const metrics = new TrainingMetrics({ defaultMetrics: false });
    assert.throws(
      () => metrics.stepDone(step({ stepSeconds: -1 })),
      (error: Error) => error instanceof MetricsInputError && /stepSeconds/.test(error.message),
    );
    assert.throws(() => metrics.stepDone(step({ images: 2.5 })), /images must be an integer/);
    assert.throws(() => metrics.stepDone(step({ dataWaitSeconds: Number.NaN })), /dataWaitSeconds/);
    assert.throws(
      () => metrics.stepDone(step({ learningRates: { discriminator: Number.POSITIVE_INFINITY } })),
      /learningRates\.discriminator/,
    );
    assert.throws(() => metrics.allReduceDone(0.1, -5, 0), /allReduce bytes/);
    assert.throws(() => metrics.allReduceDone(0.1, 5, 0.2), /allReduce wait seconds must not exceed/);
    assert.throws(() => metrics.epochDone(-1), /completedEpochs/);
    assert.throws(() => new TrainingMetrics({ rank: -1, defaultMetrics: false }), MetricsInputError);
  });

  it('labels the default process metrics with the rank and leaves out the _total gauges', async () => {
    const metrics = new TrainingMetrics({ rank: 2 });
    const snapshot = await metrics.snapshot();
    const names = new Set(snapshot.map((metric) => metric.name));
    for (const name of DEFAULT_METRICS_LEFT_OUT) assert.ok(!names.has(name), name);
    assert.ok(names.has('nodejs_active_handles'));
    const rss = snapshot.find((metric) => metric.name === 'process_resident_memory_bytes')!;
    assert.equal(rss.values[0].labels.rank, '2');
    assert.ok(rss.values[0].value > 1e6);
    // Every gauge or counter name ending in _total must be a counter (what promtool checks).
    for (const metric of snapshot) if (metric.name.endsWith('_total')) assert.equal(metric.type, 'counter', metric.name);
  });
});

describe('lossesByNetwork', () => {
  it('puts the logging terms under "all" and each objective under its optimizer group', async () => {
    const losses = lossesByNetwork({ loss: 3, kld: 1, gan: 0.7 }, { encoder: 3, decoder: 2.5, discriminator: 0.7 });
    assert.deepEqual(losses, {
      all: { loss: 3, kld: 1, gan: 0.7 },
      encoder: { objective: 3 },
      decoder: { objective: 2.5 },
      discriminator: { objective: 0.7 },
    });
    const metrics = new TrainingMetrics({ defaultMetrics: false });
    metrics.stepDone(step({ losses }));
    const snapshot = await metrics.snapshot();
    assert.equal(valueOf(snapshot, 'medvae_loss', { network: 'decoder', term: 'objective' }), 2.5);
    assert.equal(valueOf(snapshot, 'medvae_loss', { network: 'all', term: 'gan' }), 0.7);
  });
});

describe('ThroughputWindow', () => {
  it('averages images over the newest steps covering the window', () => {
    const window = new ThroughputWindow(1);
    const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);
    close(window.add(10, 0.4), 10 / 0.4);
    close(window.add(10, 0.4), 20 / 0.8);
    // 1.2 s held; dropping the oldest would leave 0.8 s < 1 s, so all three stay.
    close(window.add(30, 0.4), 50 / 1.2);
    // 1.6 s: the oldest goes (1.2 s left), the next would leave 0.8 s and stays.
    close(window.add(10, 0.4), 50 / 1.2);
    // A long step alone covers the window.
    close(window.add(100, 2), 50);
    assert.throws(() => new ThroughputWindow(0), MetricsInputError);
  });
});
