// What happens between epochs (and when a run stops): the epoch's record and pictures, and
// checkpoints, which remember the best epoch so far.
import type { ExperimentConfig } from '../config/schema.ts';
import { saveCheckpoint, type TrainState } from '../run/checkpoint.ts';
import type { Progress } from '../run/progress.ts';
import { writeEpochPictures } from './pictures.ts';
import type { RunSetup } from './setup.ts';

/** Saves checkpoints of a run (the chief's job; other workers keep the state in step). */
export class Checkpointer {
  /** The newest checkpoint written, '' before the first. */
  last = '';

  constructor(
    private readonly root: string,
    private readonly run: RunSetup,
    private readonly cfg: ExperimentConfig,
    private readonly isChief: boolean,
    private readonly onCheckpoint?: (dir: string) => void,
  ) {}

  /** `epochEnd`: lastLoss is an epoch mean, comparable with bestLoss; mid-epoch saves never become 'best'. */
  async save(epochEnd: boolean): Promise<void> {
    const { state, model, optimizers } = this.run;
    state.savedAt = new Date().toISOString();
    const isBest = epochEnd && state.lastLoss < state.bestLoss;
    if (isBest) state.bestLoss = state.lastLoss;
    if (!this.isChief) return;
    const adams = Object.fromEntries(Object.entries(optimizers).map(([group, o]) => [group, o.adam]));
    const latentDensity = await this.run.latentDensity?.at(state.step);
    this.last = await saveCheckpoint(this.root, { model, optimizers: adams, state, latentDensity }, this.cfg.output.keep_last, isBest);
    this.onCheckpoint?.(this.last);
  }

  /** Whether the epoch that just completed (state.epoch has moved past it) is one to keep. */
  due(state: TrainState): boolean {
    return state.epoch % this.cfg.output.checkpoint_every_epochs === 0 || state.epoch === this.cfg.train.epochs;
  }
}

/** An epoch's loss terms, summed step by step. */
export class EpochTotals {
  readonly sums: Record<string, number> = {};
  steps = 0;
  readonly start = performance.now();

  add(terms: Record<string, number>): void {
    for (const [k, v] of Object.entries(terms)) this.sums[k] = (this.sums[k] ?? 0) + v;
    this.steps++;
  }

  means(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.sums).map(([k, v]) => [k, v / Math.max(1, this.steps)]));
  }
}

/**
 * Ends an epoch (or a run that stops inside one): its line in metrics.jsonl, the hooks, the
 * pictures, and the state moved on to the next epoch when this one is complete. Returns whether it was.
 */
export async function endEpoch(
  run: RunSetup,
  cfg: ExperimentConfig,
  totals: EpochTotals,
  lr: number,
  progress: Progress,
  onEpoch?: (epoch: number, means: Record<string, number>) => void,
): Promise<boolean> {
  const { state } = run;
  const complete = state.stepInEpoch >= run.loader.stepsPerEpoch;
  const means = totals.means();
  const seconds = (performance.now() - totals.start) / 1000;
  const imagesPerSecond = (totals.steps * cfg.train.batch_size) / Math.max(seconds, 1e-9);
  run.record({
    kind: 'epoch',
    epoch: state.epoch + 1,
    step: state.step,
    complete,
    means,
    lr,
    images_per_s: imagesPerSecond,
    seconds,
    time: new Date().toISOString(),
  });
  onEpoch?.(state.epoch, means);
  if (run.preview) {
    progress.done();
    await writeEpochPictures({
      model: run.model,
      config: cfg,
      runDir: run.runDir,
      epoch: state.epoch,
      preview: run.preview,
      labelNames: run.dataset.labelNames,
      metricsFile: run.metricsFile,
      batchSize: run.micro,
      latentDensity: await run.latentDensity?.at(state.step),
    });
  }
  // "Best" compares epoch means: one step's loss is too noisy to pick a checkpoint by.
  if (totals.steps > 0) state.lastLoss = means.loss ?? state.lastLoss;
  // The saved state names what runs next: the following epoch once this one is complete.
  if (complete) {
    state.epoch++;
    state.stepInEpoch = 0;
  }
  return complete;
}
