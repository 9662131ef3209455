// What one data-parallel worker process does for the agent: listen for its ring neighbours, train
// with the ring as its collective, answer health checks and metric scrapes, stop when asked. All of
// a worker's state lives in one object that the agent drives through WorkerApi.
import { tf } from '../util/tf.ts';
import type { PeerAddress, RingListener } from '../collective/ring.ts';
import { listenForRingOnThread } from '../collective/ring-thread.ts';
import type { WorkerApi, WorkerHealth, WorkerPlan, WorkerResult } from './worker-protocol.ts';
import { TrainingMetrics, type MetricSnapshot } from '../metrics/registry.ts';
import { train } from '../train/trainer.ts';
import { metricsHooks } from '../train/metrics-hooks.ts';
import { createProgress } from '../run/progress.ts';

export class WorkerSession implements WorkerApi {
  private prepared: { plan: WorkerPlan; listener: RingListener; metrics: TrainingMetrics } | undefined;
  private phase: WorkerHealth['phase'] = 'setup';
  private step = 0;
  private peakRss = 0;
  private readonly stopper = new AbortController();

  async prepare(plan: WorkerPlan): Promise<{ port: number; socketPath: string | null }> {
    // On its own thread, the ring moves gradient bytes while the backward pass computes.
    const listener = await listenForRingOnThread({
      rank: plan.rank,
      worldSize: plan.worldSize,
      listen: { host: plan.listenHost, port: 0 },
      bucketBytes: plan.bucketBytes,
      chunkBytes: plan.chunkBytes,
      offerUnixSocket: plan.offerUnixSocket,
    });
    this.prepared = { plan, listener, metrics: new TrainingMetrics({ rank: plan.rank }) };
    return { port: listener.port, socketPath: listener.socketPath };
  }

  async train(peers: PeerAddress[]): Promise<WorkerResult> {
    if (!this.prepared) throw new Error('worker: prepare() must come first');
    const { plan, listener, metrics } = this.prepared;
    const collective = await listener.connect(peers);
    this.phase = 'training';
    const hooks = metricsHooks(metrics);
    try {
      const result = await train({
        config: plan.config,
        runDir: plan.runDir,
        resume: plan.resume,
        progress: createProgress(plan.logFormat, { everySteps: plan.config.train.log_every }),
        collective,
        gradientBuckets: { bytes: plan.bucketBytes, overlap: plan.overlap },
        signal: this.stopper.signal,
        hooks: {
          ...hooks,
          onStep: (info) => {
            this.step = info.step;
            this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
            hooks.onStep?.(info);
          },
        },
      });
      this.phase = 'done';
      return { step: result.state.step, stoppedBy: result.stoppedBy, checkpoint: result.checkpoint, peakRssBytes: this.peakRss };
    } finally {
      await collective.close();
    }
  }

  health(): WorkerHealth {
    const memory = tf.memory();
    return {
      rank: this.prepared?.plan.rank ?? -1,
      pid: process.pid,
      phase: this.phase,
      step: this.step,
      rssBytes: process.memoryUsage().rss,
      tensors: memory.numTensors,
      tensorBytes: memory.numBytes,
    };
  }

  async metrics(): Promise<MetricSnapshot> {
    return this.prepared ? this.prepared.metrics.snapshot() : [];
  }

  stop(): void {
    this.stopper.abort();
  }
}
