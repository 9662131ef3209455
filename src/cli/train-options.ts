// The flags `medvae train` and `medvae-dist` share, and how they turn into a checked config and a
// run directory. One definition serves both commands.
import { Command, Option } from 'commander';
import { allowSoftwareGpuOption, backendOption, type BackendFlags } from './backend-flags.ts';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadConfig, type NoteSink } from '../config/load.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import type { LogFormat } from '../train/progress.ts';
import { runDirOfResume } from '../train/resume.ts';
import { inferFormat } from '../data/format.ts';
import { UsageError } from './errors.ts';
import { resolveBundledPath } from '../util/package-root.ts';

export interface TrainFlags extends BackendFlags {
  config?: string;
  data?: string;
  out?: string;
  maxSteps?: string;
  epochs?: string;
  resume?: string;
  set: string[];
  threads?: string;
  logFormat: LogFormat;
  metricsPort?: string;
  metricsHost?: string;
  strict?: boolean;
  debug?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function addTrainFlags(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'experiment YAML (ours or PyTorch-VAE layout); default: Vanilla VAE on the bundled RetinaMNIST')
    .option('--data <path>', 'dataset file or folder (overrides data.path)')
    .option('--out <dir>', 'run directory (default runs/<model>-<dataset>-<time>)')
    .option('--max-steps <n>', 'stop after n optimizer steps (still writes grids and a checkpoint)')
    .option('--epochs <n>', 'number of epochs (overrides train.epochs)')
    .option('--resume <dir>', 'continue a run (its directory) or a checkpoint exactly where it stopped')
    .option('--set <key=value>', 'override any config key, e.g. --set train.lr=0.001 (repeatable)', collect, [])
    .addOption(backendOption())
    .addOption(allowSoftwareGpuOption())
    .option('--threads <n>', 'compute threads of the native backend (train.threads; default: every core, shared among local workers)')
    .addOption(new Option('--log-format <format>', 'progress output').choices(['auto', 'tty', 'plain', 'json']).default('auto'))
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port (0 = off; default 9464)')
    .option('--metrics-host <host>', 'address the metrics endpoint binds (default 127.0.0.1)')
    .option('--strict', 'stop at the first image that cannot be decoded instead of skipping it (data.strict)')
    .option('--debug', 'print stack traces on errors');
}

/** Builds the config from flags; `--resume` without `--config` continues with the run's own config. */
export function configFromFlags(flags: TrainFlags, worldSize = 1, onNote?: NoteSink): ExperimentConfig {
  if (flags.resume && !existsSync(flags.resume)) {
    throw new UsageError(
      `--resume ${flags.resume}: no such run directory or checkpoint; give runs/<name> or runs/<name>/checkpoints/step-N`,
    );
  }
  const sets = [...flags.set];
  if (flags.data) {
    sets.push(`data.path=${JSON.stringify(flags.data)}`);
    // --data reads what is there, as `data info` does, unless data.format is set on the command line.
    const format = flags.set.some((s) => s.startsWith('data.format=')) ? undefined : inferFormat(resolveBundledPath(flags.data));
    if (format) sets.push(`data.format=${format}`);
  }
  if (flags.maxSteps) sets.push(`train.max_steps=${flags.maxSteps}`);
  if (flags.epochs) sets.push(`train.epochs=${flags.epochs}`);
  if (flags.backend) sets.push(`train.backend=${flags.backend}`);
  if (flags.allowSoftwareGpu === true) sets.push('train.allow_software_gpu=true');
  if (flags.threads !== undefined) sets.push(`train.threads=${flags.threads}`);
  if (flags.metricsPort !== undefined) sets.push(`output.metrics_port=${flags.metricsPort}`);
  if (flags.metricsHost) sets.push(`output.metrics_host=${JSON.stringify(flags.metricsHost)}`);
  if (flags.strict) sets.push('data.strict=true');
  const resumedRun = flags.resume ? runDirOfResume(flags.resume) : undefined;
  const runConfig = !flags.config && resumedRun ? join(resumedRun, 'config.yaml') : undefined;
  const cfg = loadConfig({ file: flags.config ?? runConfig, sets, worldSize, onNote });
  cfg.data.path = resolveBundledPath(cfg.data.path);
  return cfg;
}

/** --out, else the run being resumed (also when --resume names one of its checkpoints), else runs/<name or model-dataset-time>. */
export function runDirFor(flags: TrainFlags, cfg: ExperimentConfig): string {
  if (flags.out) return flags.out;
  const resumedRun = flags.resume ? runDirOfResume(flags.resume) : undefined;
  if (resumedRun) return resumedRun;
  const dataset = basename(cfg.data.path).replace(/\.[^.]+$/, '');
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
  return join(cfg.output.dir, cfg.output.name || `${cfg.model.name}-${dataset}-${stamp}`);
}
