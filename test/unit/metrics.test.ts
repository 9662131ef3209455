// Training metrics: what each TrainingMetrics method does to the exposed series, worker registries
// merged for medvae-dist as the control channel carries them, and each optimizer group's objective
// scraped over HTTP from a real (tiny) training run. One process for all, as a process costs about
// a second to start: each describe block below keeps its state to itself.
import assert from 'node:assert/strict';
import { before, describe, it, test } from 'node:test';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import {
  DEFAULT_METRICS_LEFT_OUT,
  lossesByNetwork,
  MetricsInputError,
  type MetricSnapshot,
  type StepReport,
  ThroughputWindow,
  TrainingMetrics,
} from '../../src/metrics/registry.ts';
import { AgentMetrics, aggregateWorkerMetrics, MetricsMergeError } from '../../src/metrics/aggregate.ts';
import { loadConfig } from '../../src/config/load.ts';
import { train } from '../../src/train/trainer.ts';
import type { StepInfo } from '../../src/train/step-record.ts';
import { metricsHooks } from '../../src/train/metrics-hooks.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { Progress } from '../../src/run/progress.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('metrics-registry: TrainingMetrics against hand-computed values', () => {
  // TrainingMetrics: what each method does to the exposed series, checked against hand-computed values.

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
});

describe('metrics-aggregate: worker registries merged for medvae-dist', () => {
  // Merging worker registries for medvae-dist: two real TrainingMetrics, their snapshots carried as
  // the control channel would (msgpackr), merged with the agent's own metrics.

  /** Sample lines of the exposition text, `name{labels} value`, without comments. */
  function samples(text: string): string[] {
    return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  }

  /** Two lock-step workers: 3 steps each, rank r sees 4 + r images per step and its own losses. */
  async function twoWorkers(): Promise<TrainingMetrics[]> {
    const workers = [new TrainingMetrics({ rank: 0 }), new TrainingMetrics({ rank: 1 })];
    for (let step = 1; step <= 3; step++) {
      workers.forEach((worker, rank) =>
        worker.stepDone({
          step: 100 + step,
          images: 4 + rank,
          stepSeconds: rank === 0 ? 0.1 : 0.7,
          dataWaitSeconds: 0.01,
          losses: { vae: { objective: 10 * rank + step } },
          learningRates: { vae: 0.002 },
        }),
      );
    }
    workers[1].checkpointSaved(1_700_000_100);
    workers[0].divergence('explosion');
    return workers;
  }

  const viaChannel = async (worker: TrainingMetrics): Promise<unknown> => unpack(pack(await worker.snapshot()));

  describe('aggregateWorkerMetrics', () => {
    it('combines global metrics by their aggregator and keeps per-rank series apart', async () => {
      const workers = await twoWorkers();
      const merged = aggregateWorkerMetrics(await Promise.all(workers.map(viaChannel)));
      const lines = samples(await merged.metrics());
      const has = (line: string): void => assert.ok(lines.includes(line), `missing ${line}`);
      // Lock-step: max of 3 and 3 steps, not 6; global step 103; images 3x4 + 3x5.
      has('medvae_train_steps_total 3');
      has('medvae_train_step 103');
      has('medvae_train_images_total 27');
      // Throughput adds up: 12 images / 0.3 s + 15 images / 2.1 s.
      const throughput = Number(lines.find((line) => line.startsWith('medvae_train_images_per_second '))!.split(' ')[1]);
      assert.ok(Math.abs(throughput - (12 / 0.3 + 15 / 2.1)) < 1e-9, String(throughput));
      has('medvae_learning_rate{group="vae"} 0.002');
      // Only rank 1 wrote a checkpoint: the max is its time.
      has('medvae_last_checkpoint_timestamp_seconds 1700000100');
      has('medvae_loss{rank="0",network="vae",term="objective"} 3');
      has('medvae_loss{rank="1",network="vae",term="objective"} 13');
      has('medvae_train_step_duration_seconds_bucket{le="0.1",rank="0"} 3');
      has('medvae_train_step_duration_seconds_bucket{le="0.5",rank="1"} 0');
      has('medvae_train_step_duration_seconds_bucket{le="1",rank="1"} 3');
      has('medvae_divergence_events_total{rank="0",kind="explosion"} 1');
      has('medvae_divergence_events_total{rank="1",kind="explosion"} 0');
      // prom-client marks process_start_time_seconds 'omit'; per-rank it must survive the merge.
      assert.equal(lines.filter((line) => line.startsWith('process_start_time_seconds{rank=')).length, 2);
    });

    it('refuses two snapshots claiming the same rank', async () => {
      const a = await new TrainingMetrics({ rank: 0, defaultMetrics: false }).snapshot();
      const b = await new TrainingMetrics({ rank: 0, defaultMetrics: false }).snapshot();
      assert.throws(
        () => aggregateWorkerMetrics([a, b], ['worker a', 'worker b']),
        (error: Error) => error instanceof MetricsMergeError && /comes from both worker a and worker b/.test(error.message),
      );
      // Empty snapshots (a worker that has not reported yet) merge to nothing, without error.
      assert.equal(await aggregateWorkerMetrics([[], []]).metrics(), '\n');
    });

    it('reads the null a JSON channel makes of NaN and Inf back as NaN, and refuses malformed snapshots', async () => {
      const worker = new TrainingMetrics({ defaultMetrics: false });
      worker.stepDone({
        step: 1,
        images: 1,
        stepSeconds: 1,
        dataWaitSeconds: 0,
        losses: { vae: { kld: Number.NaN, objective: Number.POSITIVE_INFINITY, reconstruction: 2 } },
        learningRates: {},
      });
      const viaJson: unknown = JSON.parse(JSON.stringify(await worker.snapshot()));
      const fromJson = samples(await aggregateWorkerMetrics([viaJson]).metrics());
      assert.ok(fromJson.includes('medvae_loss{rank="0",network="vae",term="kld"} Nan'));
      assert.ok(fromJson.includes('medvae_loss{rank="0",network="vae",term="objective"} Nan'));
      assert.ok(fromJson.includes('medvae_loss{rank="0",network="vae",term="reconstruction"} 2'));
      // msgpackr keeps both.
      const fromMsgpack = samples(await aggregateWorkerMetrics([await viaChannel(worker)]).metrics());
      assert.ok(fromMsgpack.includes('medvae_loss{rank="0",network="vae",term="kld"} Nan'));
      assert.ok(fromMsgpack.includes('medvae_loss{rank="0",network="vae",term="objective"} +Inf'));

      assert.throws(
        () => aggregateWorkerMetrics([{ not: 'an array' }], ['worker rank 4']),
        (error: Error) => error instanceof MetricsMergeError && /worker rank 4: expected an array/.test(error.message),
      );
      const badValue = [{ name: 'm', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ value: '3', labels: {} }] }];
      assert.throws(
        () => aggregateWorkerMetrics([badValue], ['worker rank 2']),
        /worker rank 2: metric m has a value "3", expected a number/,
      );
      const badType = [{ name: 'm', help: 'h', type: 'info', aggregator: 'sum', values: [] }];
      assert.throws(() => aggregateWorkerMetrics([badType]), /snapshot 0: metric m has type info/);
    });
  });

  describe('AgentMetrics', () => {
    it('serves workers up, restarts and the latest snapshot of each live worker', async () => {
      const workers = await twoWorkers();
      const agent = new AgentMetrics();
      agent.workerUp(0, 'cuda:0', true);
      agent.workerUp(1, 'cuda:1', true);
      for (const worker of workers) agent.workerSnapshot(worker.rank, await viaChannel(worker));
      agent.restart();
      let lines = samples(await agent.metrics());
      assert.ok(lines.includes('medvae_worker_up{rank="0",device="cuda:0"} 1'));
      assert.ok(lines.includes('medvae_worker_up{rank="1",device="cuda:1"} 1'));
      // The agent's restart plus the workers' zeros.
      assert.ok(lines.includes('medvae_restarts_total 1'));
      assert.ok(lines.includes('medvae_train_images_total 27'));
      // Agent process metrics carry no rank; the workers' do.
      assert.ok(lines.some((line) => /^process_resident_memory_bytes \d+/.test(line)));
      assert.ok(lines.some((line) => line.startsWith('process_resident_memory_bytes{rank="1"}')));

      agent.workerUp(1, 'cuda:1', false);
      lines = samples(await agent.metrics());
      assert.ok(lines.includes('medvae_worker_up{rank="1",device="cuda:1"} 0'));
      assert.ok(
        !lines.some((line) => line.includes('rank="1"') && !line.startsWith('medvae_worker_up')),
        'rank 1 series left after it went down',
      );
      assert.ok(lines.includes('medvae_train_images_total 12'));
      assert.throws(() => agent.workerSnapshot(-1, []), /rank must be an integer/);
    });

    it('reports a worker that also claims medvae_worker_up', async () => {
      const worker = new TrainingMetrics({ rank: 0, defaultMetrics: false });
      worker.workerUp(0, 'cpu', true);
      const agent = new AgentMetrics({ defaultMetrics: false });
      agent.workerUp(0, 'cpu', true);
      agent.workerSnapshot(0, await worker.snapshot());
      await assert.rejects(agent.metrics(), /medvae_worker_up\{device="cpu",rank="0"\} comes from both agent and worker rank 0/);
    });
  });
});

describe("metrics-networks: each optimizer group's objective scraped from a training run", () => {
  // Each optimizer group's objective reaches Prometheus as medvae_loss{network=<group>,term="objective"}:
  // scraped over HTTP from the endpoint of a real (tiny) training run.

  let dir: string;
  let data: string;
  before(() => {
    dir = tempDir('medvae-networks-');
    data = join(dir, 'tiny.npz');
    writeTinyNpz(data, { train: 16, val: 8, test: 8 });
  });
  const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

  /** medvae_loss{network,term} values of a Prometheus text scrape. */
  function lossGauges(scrape: string): Map<string, number> {
    const gauges = new Map<string, number>();
    for (const m of scrape.matchAll(/^medvae_loss\{[^}]*network="([^"]+)",term="([^"]+)"\} (\S+)$/gm))
      gauges.set(`${m[1]}/${m[2]}`, Number(m[3]));
    return gauges;
  }

  async function scrapedRun(name: string): Promise<{ during: Map<string, number>; after: Map<string, number>; last: StepInfo }> {
    const config = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        `model.name=${name}`,
        `data.path=${data}`,
        'model.image_size=16',
        'train.batch_size=8',
        'train.max_steps=3',
        'train.backend=wasm',
        'model.feature_layer=1',
        'output.sample_grid=4',
      ],
    });
    const metrics = new TrainingMetrics({ rank: 0 });
    // Port 0 here is an ephemeral port (the CLI's --metrics-port 0 means no endpoint).
    const server = await startMetricsServer({ port: 0, collect: () => metrics.metrics(), contentType: metrics.contentType });
    const hooks = metricsHooks(metrics);
    let duringScrape: Promise<string> | undefined;
    let last: StepInfo | undefined;
    try {
      await train({
        config,
        runDir: join(dir, name),
        progress: quiet,
        hooks: {
          ...hooks,
          onStep: (info) => {
            hooks.onStep!(info);
            last = info;
            // Answered while training goes on (the loop awaits its reads between steps).
            if (info.step === 1) duringScrape = fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text());
          },
        },
      });
      const after = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      return { during: lossGauges(await duringScrape!), after: lossGauges(after), last: last! };
    } finally {
      await server.close();
    }
  }

  test('VAE-GAN: the encoder, decoder and discriminator objectives are scraped apart, as the last step computed them', async () => {
    const { during, after, last } = await scrapedRun('vae_gan');
    for (const network of ['encoder', 'decoder', 'discriminator']) {
      assert.ok(during.has(`${network}/objective`), `scrape during the run: ${[...during.keys()].join(', ')}`);
      const value = after.get(`${network}/objective`)!;
      assert.ok(Number.isFinite(value), `${network}: ${value}`);
      assert.ok(
        Math.abs(value - last.objectives[network]!) <= 1e-6 * Math.max(1, Math.abs(value)),
        `${network}: ${value} vs ${last.objectives[network]}`,
      );
    }
    // Three different games: the discriminator's objective is not the encoder's.
    assert.notEqual(after.get('discriminator/objective'), after.get('encoder/objective'));
  });

  test("Vanilla VAE: its one group's objective is its loss", async () => {
    const { after } = await scrapedRun('vae');
    const objective = after.get('model/objective')!;
    const loss = after.get('all/loss')!;
    assert.ok(Number.isFinite(loss));
    assert.ok(Math.abs(objective - loss) <= 1e-5 * Math.abs(loss), `objective ${objective} vs loss ${loss}`);
  });
});
