// What `medvae-dist` does once its flags have parsed: the devices, the run directory, then one
// worker in this process or the agent (launch/) over several. Loaded only when it runs; the
// launcher of several workers never computes, so it never loads TF.js.
import { runCommand, UsageError } from './errors.ts';
import { configFromFlags, runDirFor } from './train-options.ts';
import { gpuRoute } from '../backend/gpu-route.ts';
import { afterFailedRun, RunDirGuard, shellWord } from './run-dir.ts';
import { interruptSignal, reportInterrupted, startMetricsOrWarn } from './training-process.ts';
import { createProgress, type Progress } from '../run/progress.ts';
import { hostname } from 'node:os';
import type { MultiNodeOptions } from '../launch/agent.ts';
import { deviceEnv } from '../launch/device-env.ts';
import { flattenSettings } from '../launch/rendezvous-protocol.ts';
import { LayoutError, resolveNodeLayout, type NodeLayout } from '../launch/scheduler-env.ts';
import { DEFAULT_MAX_FRAME_BYTES, TOKEN_ENV } from '../collective/ring-options.ts';
import { isLoopbackHost } from '../collective/handshake.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { LOCAL_WORKERS_ENV, oversubscription } from '../backend/native/threads.ts';
import { SOFTWARE_GPU_STEP_TIMEOUT_S, STEP_TIMEOUT_S, type DistFlags } from './dist-flags.ts';

class DistUsageError extends UsageError {
  override name = 'DistUsageError';
}

/**
 * The device of each worker, from --gpus / --cpu-workers. GPUs compute on CUDA (tfjs-node-gpu) or
 * WebGPU, whichever the config's backend reaches; with neither they fall back to CPU workers with
 * one warning, and an explicit `--backend webgpu` that cannot start is an error here, before any
 * worker does.
 */
async function resolveDevices(
  flags: DistFlags,
  config: ExperimentConfig,
  progress: Progress,
): Promise<{ devices: string[]; softwareGpu: boolean }> {
  const count = deviceCount(flags);
  if (flags.gpus !== undefined) {
    const ids = flags.gpus.split(',').map((s) => s.trim());
    const route = await gpuRoute(config.train.backend, config.train.allow_software_gpu);
    if (route.route === 'webgpu' && !route.software) {
      const missing = ids.filter((id) => Number(id) >= route.gpus.length);
      if (missing.length > 0)
        throw new DistUsageError(
          `--gpus ${flags.gpus}: WebGPU sees ${route.gpus.length} GPU(s) (${route.gpus.map((g, i) => `${i}: ${g}`).join('; ')}); \`medvae gpus\` lists them`,
        );
    }
    if (route.route !== 'none') return { devices: ids.map((id) => `gpu:${id}`), softwareGpu: route.route === 'webgpu' && route.software };
    if (config.train.backend === 'webgpu') throw new DistUsageError(`--gpus ${flags.gpus} --backend webgpu: ${route.why}`);
    progress.info(`warning: no GPU backend (${route.why}): --gpus ${flags.gpus} falls back to ${ids.length} CPU worker(s)`);
    return { devices: ids.map((_, i) => `cpu:${i}`), softwareGpu: false };
  }
  return { devices: Array.from({ length: count }, (_, i) => `cpu:${i}`), softwareGpu: false };
}

/** Workers on this node, from --gpus / --cpu-workers, checked before anything else uses the number. */
function deviceCount(flags: DistFlags): number {
  if (flags.gpus !== undefined && flags.cpuWorkers !== undefined) throw new DistUsageError('give either --gpus or --cpu-workers, not both');
  if (flags.gpus !== undefined) {
    const ids = flags.gpus.split(',').map((s) => s.trim());
    if (ids.some((id) => !/^\d+$/.test(id)) || new Set(ids).size !== ids.length) {
      throw new DistUsageError(`--gpus must be distinct GPU indices separated by commas, e.g. 0,1; got '${flags.gpus}'`);
    }
    return ids.length;
  }
  const n = /^\s*\d+\s*$/.test(flags.cpuWorkers ?? '1') ? Number(flags.cpuWorkers ?? '1') : NaN;
  if (!(n >= 1)) throw new DistUsageError(`--cpu-workers must be an integer >= 1, got '${flags.cpuWorkers}'`);
  return n;
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
    if (!Number.isFinite(n) || n < 4 || n % 4 !== 0)
      throw new DistUsageError(`${flag} must give a positive whole number of 4-byte floats, got '${value}'`);
    return n;
  };
  const bucketBytes = bytes('--bucket-mb', flags.bucketMb, 2 ** 20);
  const chunkBytes = bytes('--chunk-kb', flags.chunkKb, 2 ** 10);
  if (chunkBytes > bucketBytes)
    throw new DistUsageError(`--chunk-kb ${flags.chunkKb} is larger than the bucket (--bucket-mb ${flags.bucketMb})`);
  if (chunkBytes > DEFAULT_MAX_FRAME_BYTES)
    throw new DistUsageError(
      `--chunk-kb ${flags.chunkKb} exceeds the largest frame a worker accepts (${DEFAULT_MAX_FRAME_BYTES / 2 ** 10} KiB)`,
    );
  return { bucketBytes, chunkBytes };
}

function nodeLayout(flags: DistFlags): NodeLayout {
  try {
    return resolveNodeLayout(flags);
  } catch (e) {
    if (e instanceof LayoutError) throw new DistUsageError(e.message);
    throw e;
  }
}

/** What every node must agree on, checked key by key at the rendezvous. */
function multiNodeOptions(
  flags: DistFlags,
  layout: NodeLayout,
  config: ExperimentConfig,
  runDir: string,
  workersPerNode: number,
): MultiNodeOptions {
  const token = process.env[TOKEN_ENV] ?? '';
  if (token === '' && !isLoopbackHost(layout.masterAddr)) {
    throw new DistUsageError(
      `--nnodes ${layout.nnodes} across hosts needs ${TOKEN_ENV}: set it to the same secret on every node (a Kubernetes Secret, or an exported variable under Slurm)`,
    );
  }
  const dist = {
    workers_per_node: workersPerNode,
    max_restarts: flags.maxRestarts,
    step_timeout_s: flags.stepTimeout,
    bucket_mb: flags.bucketMb,
    chunk_kb: flags.chunkKb,
    overlap: flags.overlap,
    run_dir: runDir,
    resume: flags.resume ?? null,
  };
  return {
    layout,
    token,
    localAddr: flags.localAddr,
    hostname: hostname(),
    rdzvTimeoutMs: positive('--rdzv-timeout', flags.rdzvTimeout) * 1000,
    settings: flattenSettings({ ...config, dist }),
  };
}

/** `medvae-dist FLAGS`. */
export async function distCommand(flags: DistFlags): Promise<void> {
  let guard: RunDirGuard | undefined;
  await runCommand(
    Boolean(flags.debug),
    async () => {
      const layout = nodeLayout(flags);
      // Notes on the layout and the config wait for the progress output, which follows train.log_every.
      const notes = [...layout.notes];
      const multiNode = layout.nnodes > 1;
      const workersPerNode = deviceCount(flags);
      const config = configFromFlags(flags, layout.nnodes * workersPerNode, (note) => notes.push(note));
      const progress = createProgress(flags.logFormat, { everySteps: config.train.log_every });
      for (const note of notes) progress.info(note);
      const { devices, softwareGpu } = await resolveDevices(flags, config, progress);
      if (flags.stepTimeout === undefined && softwareGpu)
        progress.info(
          `a software GPU adapter runs steps at CPU-emulated speed: --step-timeout defaults to ${SOFTWARE_GPU_STEP_TIMEOUT_S} s`,
        );
      flags.stepTimeout ??= String(softwareGpu ? SOFTWARE_GPU_STEP_TIMEOUT_S : STEP_TIMEOUT_S);
      if (multiNode && !flags.out && !flags.resume && !config.output.name) {
        throw new DistUsageError(
          `--nnodes ${layout.nnodes}: give --out DIR, the same path on shared storage on every node (the default name carries a time stamp that differs between nodes)`,
        );
      }
      const runDir = runDirFor(flags, config);
      // Only node 0 may remove a run directory it made: on shared storage the others' is the same one.
      guard = layout.nodeRank === 0 ? new RunDirGuard(runDir) : undefined;
      const devicesFlag = flags.gpus !== undefined ? `--gpus ${flags.gpus}` : `--cpu-workers ${devices.length}`;
      const nodesFlags = multiNode
        ? `--nnodes ${layout.nnodes} --node-rank ${layout.nodeRank} --master-addr ${shellWord(layout.masterAddr)} --master-port ${layout.masterPort} `
        : '';
      const resumeCommand = `npx medvae-dist ${nodesFlags}${devicesFlag} --resume ${shellWord(runDir)}${multiNode ? ' (on every other node the same with its own --node-rank; under Kubernetes or Slurm, resubmit the job with --resume)' : ''}`;
      const signal = interruptSignal(() =>
        progress.info('interrupted: workers finish this step, then rank 0 saves a checkpoint (Ctrl-C again to stop at once)'),
      );
      const maxRestarts = positive('--max-restarts', flags.maxRestarts);
      const stepTimeoutMs = positive('--step-timeout', flags.stepTimeout) * 1000;
      const { bucketBytes, chunkBytes } = dataPlaneSizes(flags);
      const dataPlane =
        devices.length > 1 || multiNode
          ? `; all-reduce in buckets of ${bucketBytes / 2 ** 20} MiB, frames of ${chunkBytes / 2 ** 10} KiB, ${flags.overlap ? 'during' : 'after'} the backward pass`
          : '';
      const nodes = multiNode ? multiNodeOptions(flags, layout, config, runDir, devices.length) : undefined;
      const listenHost = flags.listenHost ?? (multiNode && !isLoopbackHost(layout.masterAddr) ? '0.0.0.0' : '127.0.0.1');
      const where = multiNode
        ? `node ${layout.nodeRank} of ${layout.nnodes}${layout.scheduler ? ` (${layout.scheduler})` : ''}, rendezvous at ${layout.masterAddr}:${layout.masterPort}; `
        : '';
      progress.info(`${where}workers: ${devices.join(', ')}${dataPlane}`);
      // The workers (forked with this environment) share the machine's cores for the native backend.
      process.env[LOCAL_WORKERS_ENV] = String(devices.filter((d) => d.startsWith('cpu:')).length || 1);
      const crowded = oversubscription(config.train.threads, devices.length);
      if (crowded !== undefined) progress.info(crowded);

      if (devices.length === 1 && !multiNode) {
        // The single-device fallback: same loop, same outputs, no agent and no IPC.
        Object.assign(process.env, deviceEnv(devices[0]!));
        // Loaded here: the launcher of several workers never computes, so it never loads TF.js.
        const { trainInProcess } = await import('./train-action.ts');
        return await trainInProcess({ config, runDir, resume: flags.resume, progress, signal, device: devices[0]!, resumeCommand });
      }

      // Loaded here: a refused command line and the single-device path need neither the agent nor prom-client.
      const [{ launch }, { AgentMetrics }] = await Promise.all([import('../launch/agent.ts'), import('../metrics/aggregate.ts')]);
      const metrics = new AgentMetrics();
      const server = await startMetricsOrWarn(config, metrics, progress);
      try {
        const { results, restarts } = await launch({
          config,
          runDir,
          resume: flags.resume,
          resumeCommand,
          devices,
          maxRestarts,
          stepTimeoutMs,
          logFormat: flags.logFormat,
          progress,
          metrics,
          signal,
          listenHost,
          bucketBytes,
          chunkBytes,
          overlap: flags.overlap,
          nodes,
        });
        if (results[0]!.stoppedBy === 'signal')
          return reportInterrupted(progress, signal, results[0]!.step, results[0]!.checkpoint, resumeCommand);
        const peak = results.map((r) => `${Math.round(r.peakRssBytes / 2 ** 20)} MiB`).join(', ');
        progress.info(
          `finished at step ${results[0]!.step} (${results[0]!.stoppedBy}) with ${devices.length} workers${multiNode ? ` on node ${layout.nodeRank}` : ''}, ${restarts} restart(s); checkpoint ${results[0]!.checkpoint || '(none)'}; peak RSS per worker: ${peak}`,
        );
      } finally {
        await server?.close();
      }
    },
    (e) => afterFailedRun(guard, e),
  );
}
