// Connects the training loop's observer hooks to the Prometheus metrics of src/metrics.
import { tf } from '../util/tf.ts';
import { lossesByNetwork, type TrainingMetrics } from '../metrics/registry.ts';
import type { TrainHooks } from './trainer.ts';

export function metricsHooks(metrics: TrainingMetrics): TrainHooks {
  return {
    onStep(info) {
      metrics.stepDone({
        step: info.step,
        images: info.images,
        stepSeconds: info.stepSeconds,
        dataWaitSeconds: info.dataWaitSeconds,
        losses: lossesByNetwork(info.terms, info.objectives),
        learningRates: info.learningRates,
      });
      if (info.allReduceBytes > 0) metrics.allReduceDone(info.allReduceSeconds, info.allReduceBytes, info.allReduceWaitSeconds);
      metrics.tensorMemory(tf.memory());
    },
    onEpoch(epoch) {
      metrics.epochDone(epoch + 1);
    },
    onCheckpoint() {
      metrics.checkpointSaved();
    },
    onDivergence(kind) {
      metrics.divergence(kind);
    },
  };
}
