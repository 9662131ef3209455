// Merging worker registries for medvae-dist: two real TrainingMetrics, their snapshots carried as
// the control channel would (msgpackr), merged with the agent's own metrics.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pack, unpack } from 'msgpackr';
import { AgentMetrics, MetricsMergeError, aggregateWorkerMetrics } from '../../src/metrics/aggregate.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';

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
