// medvae as a library: what `import { ... } from 'medvae'` gives a user's own script. The CLI is
// built on these same functions. Call initBackend() once before creating or loading a model.
import type { ExperimentConfig } from './config/schema.ts';
import { train as runTraining, type TrainOptions, type TrainResult } from './train/trainer.ts';
import type { Progress } from './run/progress.ts';

export { loadConfig, configToYaml, type LoadOptions } from './config/load.ts';
export type { ExperimentConfig, ModelConfig, DataConfig, TrainConfig, BackendChoice } from './config/schema.ts';
export { initBackend, type BackendInfo, type BackendName } from './backend/index.ts';
export { createModel } from './models/index.ts';
export type { VaeModel, ModelBatch, Encoding } from './models/base.ts';
export {
  loadRun,
  readRunConfig,
  latestCheckpoint,
  selectRunCheckpoint,
  CheckpointError,
  RunDirError,
  type LoadedRun,
  type LoadRunOptions,
  type RunCheckpoint,
  type TrainState,
} from './run/checkpoint.ts';
export type { TrainHooks, TrainResult, StepInfo } from './train/trainer.ts';
export { createProgress, type Progress, type LogFormat } from './run/progress.ts';
export type { ImageStack } from './run/images.ts';
export { sample, SampleOptionError, type SampleOptions, type SampledImages, type LatentSource } from './generate/sample.ts';
export { reconstruct } from './generate/reconstruct.ts';
export { readImages } from './generate/read-images.ts';
export { evalRun as evaluate, type RunEvalOptions } from './eval/run-eval.ts';
export type { EvalFile } from './eval/eval-file.ts';
export { openDataset } from './data/open.ts';
export { openMedmnist, MEDMNIST } from './data/medmnist.ts';
export { openGleason } from './data/gleason.ts';
export { openFolder } from './data/folder.ts';
export { NpzArchive } from './data/npz.ts';
export type { DatasetSplit, Batch, LabelKind, RawImage } from './data/types.ts';

/** A progress sink that prints nothing: the library default. */
const silent: Progress = { info: () => undefined, step: () => undefined, done: () => undefined };

/** Trains (or resumes) a run in this process; progress lines are off unless `progress` is given. */
export function train(
  options: { config: ExperimentConfig; runDir: string } & Partial<Omit<TrainOptions, 'config' | 'runDir'>>,
): Promise<TrainResult> {
  return runTraining({ ...options, progress: options.progress ?? silent });
}
