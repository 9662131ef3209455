// A real Prometheus scrapes a single-process endpoint fed by a trainer-like loop and a
// agent endpoint merging two worker registries; promtool lints a live scrape.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentMetrics } from '../../src/metrics/aggregate.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { MetricsServer } from '../../src/metrics/server.ts';
import { prometheusBinary, promtoolBinary, runPromtool, startPrometheus } from '../helpers/prometheus.ts';
import type { RunningPrometheus } from '../helpers/prometheus.ts';

/** One fake optimizer step with values a trainer could report; loss falls with the step; kld may have diverged. */
function fakeStep(metrics: TrainingMetrics, step: number, lossOffset = 0, kld = 0.5): void {
  metrics.stepDone({
    step,
    images: 8,
    stepSeconds: 0.05,
    dataWaitSeconds: 0.002,
    losses: { vae: { objective: 2 / step + lossOffset, reconstruction: 1 / step + lossOffset, kld } },
    learningRates: { vae: 0.005 },
  });
  metrics.allReduceDone(0.004, 4096, 0.001);
  metrics.tensorMemory({ numTensors: 40 + step, numBytes: 1000 * step });
}

const serve = (collect: () => Promise<string>): Promise<MetricsServer> => startMetricsServer({ port: 0, collect });

const noPrometheus = prometheusBinary === undefined ? 'prometheus binary not installed (Debian package prometheus)' : undefined;
const noPromtool = promtoolBinary === undefined ? 'promtool not installed (Debian package prometheus)' : undefined;

describe(
  `metrics scraped by a real Prometheus${noPrometheus ? ` (skipped: ${noPrometheus})` : ''}`,
  { skip: noPrometheus ?? false },
  () => {
    const single = new TrainingMetrics();
    const workers = [new TrainingMetrics({ rank: 0 }), new TrainingMetrics({ rank: 1 })];
    const agent = new AgentMetrics();
    const servers: MetricsServer[] = [];
    let prometheus: RunningPrometheus | undefined;
    let trainerLoop: NodeJS.Timeout | undefined;

    before(async () => {
      single.workerUp(0, 'cpu', true);
      let step = 0;
      fakeStep(single, ++step);
      trainerLoop = setInterval(() => fakeStep(single, ++step), 100);
      // Two workers in lock-step: 5 steps of 8 images each, rank 1's losses 1 higher and its kld NaN.
      for (let s = 1; s <= 5; s++) workers.forEach((worker, rank) => fakeStep(worker, s, rank, rank === 1 ? Number.NaN : 0.5));
      for (const worker of workers) agent.workerUp(worker.rank, `cpu:${worker.rank}`, true);
      for (const worker of workers) agent.workerSnapshot(worker.rank, await worker.snapshot());

      servers.push(await serve(() => single.metrics()), await serve(() => agent.metrics()));
      const [train, dist] = servers.map((server) => `127.0.0.1:${server.port}`);
      // Scrapes a second apart: rate() over 5 s below needs samples that span its window, and the
      // stand-in trainer here costs nothing while the test waits.
      prometheus = await startPrometheus({
        jobs: [
          { job: 'train', targets: [train] },
          { job: 'dist', targets: [dist] },
        ],
        scrapeIntervalMs: 1000,
      });
      await prometheus.waitForScrapes('train', 2);
      await prometheus.waitForScrapes('dist', 2);
    });

    after(async () => {
      clearInterval(trainerLoop);
      await prometheus?.stop();
      await Promise.all(servers.map((server) => server.close()));
    });

    it('sees medvae_train_steps_total increase', async () => {
      const first = await prometheus!.query('medvae_train_steps_total{job="train"}');
      assert.equal(first.length, 1);
      assert.ok(first[0].value >= 1);
      await prometheus!.waitFor(
        'medvae_train_steps_total{job="train"}',
        ([sample]) => sample !== undefined && sample.value > first[0].value,
      );
      const rate = await prometheus!.waitFor('rate(medvae_train_images_total{job="train"}[5s])');
      // 8 images every ~100 ms: about 80 images/s (timers on a busy machine run late, never early).
      assert.ok(rate[0].value > 10 && rate[0].value <= 100, `images rate ${rate[0].value}`);
    });

    it('stores finite loss gauges per network and term', async () => {
      const losses = await prometheus!.query('medvae_loss{job="train"}');
      assert.deepEqual(losses.map((sample) => sample.metric.term).sort(), ['kld', 'objective', 'reconstruction']);
      for (const sample of losses) {
        assert.equal(sample.metric.network, 'vae');
        assert.equal(sample.metric.rank, '0');
        assert.ok(Number.isFinite(sample.value) && sample.value > 0, `${JSON.stringify(sample)}`);
      }
      const [kld] = await prometheus!.query('medvae_loss{job="train",term="kld"}');
      assert.equal(kld.value, 0.5);
    });

    it('keeps both ranks of the merged registry apart and combines the global counters', async () => {
      const objective = await prometheus!.query('medvae_loss{job="dist",term="objective"}');
      const byRank = Object.fromEntries(objective.map((sample) => [sample.metric.rank, sample.value]));
      // Step 5: 2/5 for rank 0, 2/5 + 1 for rank 1.
      assert.deepEqual(byRank, { '0': 0.4, '1': 1.4 });
      // The NaN loss arrives as NaN: the MedvaeLossNaN alert's test (x != x) finds it and nothing else.
      const nan = await prometheus!.query('medvae_loss{job="dist"} != medvae_loss{job="dist"}');
      assert.deepEqual(
        nan.map((sample) => [sample.metric.rank, sample.metric.term, Number.isNaN(sample.value)]),
        [['1', 'kld', true]],
      );
      const up = await prometheus!.query('medvae_worker_up{job="dist"}');
      assert.deepEqual(up.map((sample) => [sample.metric.rank, sample.metric.device, sample.value]).sort(), [
        ['0', 'cpu:0', 1],
        ['1', 'cpu:1', 1],
      ]);
      // Lock-step workers: steps are the max (5), images the sum (2 workers x 5 steps x 8).
      assert.equal((await prometheus!.query('medvae_train_steps_total{job="dist"}'))[0].value, 5);
      assert.equal((await prometheus!.query('medvae_train_images_total{job="dist"}'))[0].value, 80);
      const stepCounts = await prometheus!.query('medvae_train_step_duration_seconds_count{job="dist"}');
      assert.deepEqual(stepCounts.map((sample) => [sample.metric.rank, sample.value]).sort(), [
        ['0', 5],
        ['1', 5],
      ]);
      const quantile = await prometheus!.query(
        'histogram_quantile(0.5, sum by (le) (medvae_train_step_duration_seconds_bucket{job="dist"}))',
      );
      // All 10 steps took 0.05 s, in the (0.025, 0.05] bucket: the median interpolates to its middle.
      assert.ok(Math.abs(quantile[0].value - 0.0375) < 1e-9, `median ${quantile[0].value}`);
    });

    it(
      `passes promtool check metrics on a live scrape with no lint problem${noPromtool ? ` (skipped: ${noPromtool})` : ''}`,
      { skip: noPromtool ?? false },
      async () => {
        for (const server of servers) {
          const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
          assert.match(text, /medvae_train_steps_total/);
          const result = await runPromtool(['check', 'metrics'], text);
          assert.deepEqual(result, { code: 0, stdout: '', stderr: '' });
        }
      },
    );
  },
);
