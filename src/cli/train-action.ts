// What `medvae train` does once its flags have parsed, and training in this process on one device
// (also medvae-dist's single-device path). Loaded only when a training runs: it brings TF.js.
import { train } from '../train/trainer.ts';
import { createProgress, type Progress } from '../run/progress.ts';
import { configFromFlags, runDirFor } from './train-options.ts';
import type { TrainFlags } from './train-flags.ts';
import { runCommand } from './errors.ts';
import { afterFailedRun, RunDirGuard, shellWord } from './run-dir.ts';
import { TrainingMetrics } from '../metrics/registry.ts';
import { interruptSignal, reportInterrupted, startMetricsOrWarn } from './training-process.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { metricsHooks } from '../train/metrics-hooks.ts';

export interface InProcessRun {
  config: ExperimentConfig;
  runDir: string;
  resume?: string;
  progress: Progress;
  signal: AbortSignal;
  /** The device, as the metrics label it (medvae_worker_up{device}). */
  device: string;
  /** The command that continues this run, printed when it is interrupted. */
  resumeCommand: string;
}

/**
 * Training in this process on one device, with its metrics endpoint: what `medvae train` runs,
 * and `medvae-dist` on a single device (no agent, no IPC).
 */
export async function trainInProcess(run: InProcessRun): Promise<void> {
  const { config, runDir, resume, progress, signal } = run;
  const metrics = new TrainingMetrics({ rank: 0 });
  metrics.workerUp(0, run.device, true);
  const server = await startMetricsOrWarn(config, metrics, progress);
  try {
    const result = await train({ config, runDir, resume, progress, signal, hooks: metricsHooks(metrics) });
    if (result.stoppedBy === 'signal') return reportInterrupted(progress, signal, result.state.step, result.checkpoint, run.resumeCommand);
    const how = result.stoppedBy === 'completed' ? 'finished' : `stopped (${result.stoppedBy.replace('_', ' ')})`;
    progress.info(`${how} at step ${result.state.step}; checkpoint ${result.checkpoint || '(none)'}`);
  } finally {
    await server?.close();
  }
}

/** `medvae train FLAGS`. */
export async function trainCommand(flags: TrainFlags): Promise<void> {
  let guard: RunDirGuard | undefined;
  await runCommand(
    Boolean(flags.debug),
    async () => {
      // Notes on the config (keys of a PyTorch-VAE file that do nothing here) wait for the progress output.
      const notes: string[] = [];
      const config = configFromFlags(flags, 1, (note) => notes.push(note));
      const runDir = runDirFor(flags, config);
      guard = new RunDirGuard(runDir);
      const progress = createProgress(flags.logFormat, { everySteps: config.train.log_every });
      for (const note of notes) progress.info(note);
      const signal = interruptSignal(() =>
        progress.info('interrupted: finishing this step and saving a checkpoint (Ctrl-C again to stop at once)'),
      );
      const resumeCommand = `npx medvae train --resume ${shellWord(runDir)}`;
      await trainInProcess({ config, runDir, resume: flags.resume, progress, signal, device: 'local', resumeCommand });
    },
    (e) => afterFailedRun(guard, e),
  );
}
