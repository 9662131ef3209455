// Stops a run whose loss has become NaN/Inf or exploded, before the bad step reaches the weights,
// with a message that says what happened, where the last good checkpoint is, and what to try.
import type { ExperimentConfig } from '../config/schema.ts';
import type { TrainState } from '../run/checkpoint.ts';

export class DivergenceError extends Error {
  override name = 'DivergenceError';
  constructor(
    message: string,
    readonly kind: 'nan' | 'explosion',
  ) {
    super(message);
  }
}

export interface DivergenceProblem {
  kind: 'nan' | 'explosion';
  error(state: TrainState, lastCheckpoint: string | undefined, cfg: ExperimentConfig): DivergenceError;
}

/** Steps seen before the explosion test starts: early losses move by orders of magnitude legitimately. */
const WARMUP_STEPS = 20;
const WINDOW = 50;

export class DivergenceMonitor {
  private readonly recent: number[] = [];

  constructor(private readonly factor: number) {}

  /** Returns a problem when a term is not finite, or the loss exceeds factor x its recent median. */
  check(terms: Record<string, number>): DivergenceProblem | undefined {
    const bad = Object.entries(terms).find(([, v]) => !Number.isFinite(v));
    if (bad) {
      return {
        kind: 'nan',
        error: (state, last, cfg) =>
          new DivergenceError(
            `training diverged at step ${state.step + 1} (epoch ${state.epoch + 1}): loss term '${bad[0]}' is ${String(bad[1])}. ` +
              `${advice(cfg)} The last good checkpoint is ${last ?? '(none yet)'} and was left intact; resume from it with --resume after changing the config.`,
            'nan',
          ),
      };
    }
    const loss = terms.loss ?? Object.values(terms)[0];
    if (loss === undefined) return undefined;
    if (this.recent.length >= WARMUP_STEPS) {
      const median = [...this.recent].sort((a, b) => a - b)[Math.floor(this.recent.length / 2)]!;
      if (Math.abs(loss) > this.factor * Math.max(Math.abs(median), 1e-12)) {
        return {
          kind: 'explosion',
          error: (state, last, cfg) =>
            new DivergenceError(
              `training diverged at step ${state.step + 1} (epoch ${state.epoch + 1}): loss ${loss.toExponential(3)} is over ${this.factor}x its recent median ${median.toExponential(3)}. ` +
                `${advice(cfg)} The last good checkpoint is ${last ?? '(none yet)'} and was left intact.`,
              'explosion',
            ),
        };
      }
    }
    this.recent.push(loss);
    if (this.recent.length > WINDOW) this.recent.shift();
    return undefined;
  }
}

function advice(cfg: ExperimentConfig): string {
  const lr = cfg.train.lr;
  const hint =
    cfg.model.image_size >= 128 && lr >= 0.001
      ? `The paper's lr ${lr} is known to diverge at ${cfg.model.image_size}x${cfg.model.image_size}; lower it, e.g. --set train.lr=${lr / 10},`
      : `Lower the learning rate, e.g. --set train.lr=${lr / 10},`;
  return `${hint} or raise the batch size.`;
}
