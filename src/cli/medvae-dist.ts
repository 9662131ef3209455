// `medvae-dist`: data-parallel training, one worker process per device. Takes every flag of
// `medvae train` and shares its configs, run layout, checkpoints and resume.
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { addTrainFlags, configFromFlags, runDirFor, type TrainFlags } from './train-options.ts';
import { runCommand, usageExitCodes, UsageError } from './errors.ts';
import { afterFailedRun, RunDirGuard, shellWord } from './run-dir.ts';
import { interruptSignal, reportInterrupted, startMetricsOrWarn } from './train-command.ts';
import { createProgress, type Progress } from '../train/progress.ts';
import { train } from '../train/trainer.ts';
import { metricsHooks } from '../train/metrics-hooks.ts';
import { TrainingMetrics } from '../metrics/registry.ts';
import { CoordinatorMetrics } from '../metrics/aggregate.ts';
import { launch } from '../dist/coordinator.ts';
import { LOCAL_WORKERS_ENV, oversubscription } from '../backend/native/threads.ts';
import { DEFAULT_BUCKET_BYTES, DEFAULT_CHUNK_BYTES, DEFAULT_MAX_FRAME_BYTES } from '../dist/ring.ts';

interface DistFlags extends TrainFlags {
  gpus?: string;
  cpuWorkers?: string;
  maxRestarts: string;
  stepTimeout: string;
  listenHost: string;
  bucketMb: string;
  chunkKb: string;
}

class DistUsageError extends UsageError {
  override name = 'DistUsageError';
}

function gpuBackendInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
}

/** The device of each worker, from --gpus / --cpu-workers; GPUs fall back to CPU workers with one warning. */
function resolveDevices(flags: DistFlags, progress: Progress, gpuAvailable = gpuBackendInstalled()): string[] {
  if (flags.gpus !== undefined && flags.cpuWorkers !== undefined) throw new DistUsageError('give either --gpus or --cpu-workers, not both');
  if (flags.gpus !== undefined) {
    const ids = flags.gpus.split(',').map((s) => s.trim());
    if (ids.length === 0 || ids.some((id) => !/^\d+$/.test(id)) || new Set(ids).size !== ids.length) {
      throw new DistUsageError(`--gpus must be distinct GPU indices separated by commas, e.g. 0,1; got '${flags.gpus}'`);
    }
    if (gpuAvailable) return ids.map((id) => `gpu:${id}`);
    progress.info(`warning: no GPU backend (@tensorflow/tfjs-node-gpu is not installed): --gpus ${flags.gpus} falls back to ${ids.length} CPU worker(s)`);
    return ids.map((_, i) => `cpu:${i}`);
  }
  const n = Number(flags.cpuWorkers ?? '1');
  if (!Number.isInteger(n) || n < 1) throw new DistUsageError(`--cpu-workers must be an integer >= 1, got '${flags.cpuWorkers}'`);
  return Array.from({ length: n }, (_, i) => `cpu:${i}`);
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new DistUsageError(`${flag} must be a number >= 0, got '${value}'`);
  return n;
}

/** --bucket-mb and --chunk-kb in bytes: whole float32s, a chunk no larger than its bucket nor a frame. */
function dataPlaneSizes(flags: DistFlags): { bucketBytes: number; chunkBytes: number } {
  const bytes = (flag: string, value: string, unit: number): number => {
    const n = Number(value) * unit;
    if (!Number.isFinite(n) || n < 4 || n % 4 !== 0) throw new DistUsageError(`${flag} must give a positive whole number of 4-byte floats, got '${value}'`);
    return n;
  };
  const bucketBytes = bytes('--bucket-mb', flags.bucketMb, 2 ** 20);
  const chunkBytes = bytes('--chunk-kb', flags.chunkKb, 2 ** 10);
  if (chunkBytes > bucketBytes) throw new DistUsageError(`--chunk-kb ${flags.chunkKb} is larger than the bucket (--bucket-mb ${flags.bucketMb})`);
  if (chunkBytes > DEFAULT_MAX_FRAME_BYTES) throw new DistUsageError(`--chunk-kb ${flags.chunkKb} exceeds the largest frame a worker accepts (${DEFAULT_MAX_FRAME_BYTES / 2 ** 10} KiB)`);
  return { bucketBytes, chunkBytes };
}

const program = addTrainFlags(usageExitCodes(new Command('medvae-dist'))
  .description('data-parallel training: one worker process per GPU (or CPU worker), gradients averaged every step'))
  .option('--gpus <ids>', 'GPU indices, one worker each, e.g. 0,1 (one GPU: no coordinator, the single-GPU path)')
  .option('--cpu-workers <n>', 'number of CPU workers (wasm backend)')
  .option('--max-restarts <n>', 'restart all workers from the last checkpoint up to n times when one dies or hangs', '0')
  .option('--step-timeout <seconds>', 'after its first step, a worker whose step count does not move for this long is treated as hung (start-up may take up to 300 s)', '600')
  .option('--listen-host <host>', `data-plane address of the workers (beyond loopback needs MEDVAE_DIST_TOKEN)`, '127.0.0.1')
  .option('--bucket-mb <MiB>', 'all-reduce bucket size: gradients are reduced this many MiB at a time', String(DEFAULT_BUCKET_BYTES / 2 ** 20))
  .option('--chunk-kb <KiB>', 'frame size within a bucket: the unit that is pipelined around the ring', String(DEFAULT_CHUNK_BYTES / 2 ** 10))
  .action(async (flags: DistFlags) => {
    let guard: RunDirGuard | undefined;
    await runCommand(Boolean(flags.debug), async () => {
      const progress = createProgress(flags.logFormat, { everySteps: 10 });
      const devices = resolveDevices(flags, progress);
      const config = configFromFlags(flags, devices.length, (note) => progress.info(note));
      const runDir = runDirFor(flags, config);
      guard = new RunDirGuard(runDir);
      const devicesFlag = flags.gpus !== undefined ? `--gpus ${flags.gpus}` : `--cpu-workers ${devices.length}`;
      const resumeCommand = `npx medvae-dist ${devicesFlag} --resume ${shellWord(runDir)}`;
      const signal = interruptSignal(() => progress.info('interrupted: workers finish this step, then rank 0 saves a checkpoint (Ctrl-C again to stop at once)'));
      const maxRestarts = positive('--max-restarts', flags.maxRestarts);
      const stepTimeoutMs = positive('--step-timeout', flags.stepTimeout) * 1000;
      const { bucketBytes, chunkBytes } = dataPlaneSizes(flags);
      const dataPlane = devices.length > 1 ? `; all-reduce in buckets of ${bucketBytes / 2 ** 20} MiB, frames of ${chunkBytes / 2 ** 10} KiB` : '';
      progress.info(`workers: ${devices.join(', ')}${dataPlane}`);
      // The workers (forked with this environment) share the machine's cores for the native backend.
      process.env[LOCAL_WORKERS_ENV] = String(devices.filter((d) => d.startsWith('cpu:')).length || 1);
      const crowded = oversubscription(config.train.threads, devices.length);
      if (crowded !== undefined) progress.info(crowded);

      if (devices.length === 1) {
        // The single-device fallback: same loop, same outputs, no coordinator and no IPC.
        const [kind, id] = devices[0]!.split(':');
        process.env.CUDA_VISIBLE_DEVICES = kind === 'gpu' ? id : '';
        const metrics = new TrainingMetrics({ rank: 0 });
        metrics.workerUp(0, devices[0]!, true);
        const server = await startMetricsOrWarn(config, metrics, progress);
        try {
          const result = await train({ config, runDir, resume: flags.resume, progress, signal, hooks: metricsHooks(metrics) });
          if (result.stoppedBy === 'signal') return reportInterrupted(progress, signal, result.state.step, result.checkpoint, resumeCommand);
          progress.info(`finished at step ${result.state.step} (${result.stoppedBy}); checkpoint ${result.checkpoint || '(none)'}`);
        } finally {
          await server?.close();
        }
        return;
      }

      const metrics = new CoordinatorMetrics();
      const server = await startMetricsOrWarn(config, metrics, progress);
      try {
        const { results, restarts } = await launch({
          config, runDir, resume: flags.resume, resumeCommand, devices, maxRestarts, stepTimeoutMs, logFormat: flags.logFormat,
          progress, metrics, signal, listenHost: flags.listenHost, bucketBytes, chunkBytes,
        });
        if (results[0]!.stoppedBy === 'signal') return reportInterrupted(progress, signal, results[0]!.step, results[0]!.checkpoint, resumeCommand);
        const peak = results.map((r) => `${Math.round(r.peakRssBytes / 2 ** 20)} MiB`).join(', ');
        progress.info(`finished at step ${results[0]!.step} (${results[0]!.stoppedBy}) with ${devices.length} workers, ${restarts} restart(s); checkpoint ${results[0]!.checkpoint || '(none)'}; peak RSS per worker: ${peak}`);
      } finally {
        await server?.close();
      }
    }, (e) => afterFailedRun(guard, e));
  });

await program.parseAsync(process.argv);
