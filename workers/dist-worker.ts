// One data-parallel worker process of `medvae-dist`, forked by the agent with its device
// already chosen (CUDA_VISIBLE_DEVICES). It exposes WorkerApi over the IPC channel and runs the
// same training loop as `medvae train`, with the ring (src/distributed/collective) as its collective.
import * as Comlink from 'comlink';
import * as tf from '@tensorflow/tfjs';
import { parentProcessEndpoint } from '../src/distributed/launch/ipc-endpoint.ts';
import { listenForRing, type RingListener } from '../src/distributed/collective/ring.ts';
import type { WorkerApi, WorkerHealth, WorkerPlan, WorkerResult } from '../src/distributed/launch/worker-protocol.ts';
import { TrainingMetrics } from '../src/metrics/registry.ts';
import { train } from '../src/train/trainer.ts';
import { metricsHooks } from '../src/train/metrics-hooks.ts';
import { createProgress } from '../src/train/progress.ts';

let plan: WorkerPlan | undefined;
let listener: RingListener | undefined;
let metrics: TrainingMetrics | undefined;
let phase: WorkerHealth['phase'] = 'setup';
let step = 0;
let peakRss = 0;
const stopper = new AbortController();

function needPlan(): WorkerPlan {
  if (!plan) throw new Error('worker: prepare() must come first');
  return plan;
}

const api: WorkerApi = {
  async prepare(p) {
    plan = p;
    metrics = new TrainingMetrics({ rank: p.rank });
    listener = await listenForRing({
      rank: p.rank, worldSize: p.worldSize, listen: { host: p.listenHost, port: 0 }, bucketBytes: p.bucketBytes, chunkBytes: p.chunkBytes,
      offerUnixSocket: p.offerUnixSocket,
    });
    return { port: listener.port, socketPath: listener.socketPath };
  },

  async train(peers): Promise<WorkerResult> {
    const p = needPlan();
    const collective = await listener!.connect(peers);
    phase = 'training';
    const hooks = metricsHooks(metrics!);
    try {
      const result = await train({
        config: p.config,
        runDir: p.runDir,
        resume: p.resume,
        progress: createProgress(p.logFormat, { everySteps: p.config.train.log_every }),
        collective,
        signal: stopper.signal,
        hooks: {
          ...hooks,
          onStep(info) {
            step = info.step;
            peakRss = Math.max(peakRss, process.memoryUsage().rss);
            hooks.onStep?.(info);
          },
        },
      });
      phase = 'done';
      return { step: result.state.step, stoppedBy: result.stoppedBy, checkpoint: result.checkpoint, peakRssBytes: peakRss };
    } finally {
      await collective.close();
    }
  },

  health() {
    const memory = tf.memory();
    return {
      rank: plan?.rank ?? -1, pid: process.pid, phase, step,
      rssBytes: process.memoryUsage().rss, tensors: memory.numTensors, tensorBytes: memory.numBytes,
    };
  },

  async metrics() {
    if (!metrics) return [];
    return metrics.snapshot();
  },

  stop() {
    stopper.abort();
  },
};

// Ctrl-C in the terminal reaches the whole process group; the agent decides, via stop().
process.on('SIGINT', () => {});
// An orphaned worker (agent gone) must not train on alone.
process.on('disconnect', () => process.exit(1));
Comlink.expose(api, parentProcessEndpoint());
