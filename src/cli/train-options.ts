// How the flags `medvae train` and `medvae-dist` share (train-flags.ts) turn into a checked config
// and a run directory.
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkOverrides, describeUnreadableConfig, loadConfig, type NoteSink } from '../config/load.ts';
import { ConfigError } from '../config/validate.ts';
import type { ExperimentConfig } from '../config/schema.ts';
import { runDirOfResume } from '../train/resume.ts';
import { checkFormat, DatasetFormatError, inferFormat } from '../data/format.ts';
import { missingDatasetAdvice } from '../data/missing.ts';
import { UsageError } from './errors.ts';
import type { TrainFlags } from './train-flags.ts';
import { resolveBundledPath } from '../util/package-root.ts';
import { checkPathAdvice } from '../util/similar-path.ts';

/** A whole number from a flag, or a UsageError naming the flag and what it takes. */
export function integerFlag(flag: string, value: string, min: number, max?: number): number {
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (n >= min && (max === undefined || n <= max)) return n;
  throw new UsageError(
    `${flag} must be ${max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`}, got '${value}'`,
  );
}

/** A config error caused by what the command line gave (a --set, or a flag turned into one) is a usage error: exit 2. */
function asUsageError(e: unknown, flagKeys: ReadonlySet<string>): unknown {
  if (e instanceof ConfigError && e.key !== undefined && flagKeys.has(e.key)) return new UsageError(e.message, { cause: e });
  return e;
}

/** A dataset path from --data that is missing or of no readable kind is a usage error naming the flag. */
function dataFlagError(flag: string, e: unknown): unknown {
  return e instanceof DatasetFormatError ? new UsageError(`${flag} ${e.message}`, { cause: e }) : e;
}

/** The path --config names must be a file. */
function checkConfigFlag(file: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(file).isFile();
  } catch (e) {
    throw new UsageError(`--config ${describeUnreadableConfig(file, e as NodeJS.ErrnoException)}`, { cause: e });
  }
  if (!isFile) throw new UsageError(`--config ${describeUnreadableConfig(file, { code: 'EISDIR' } as NodeJS.ErrnoException)}`);
}

/** Builds the config from flags; `--resume` without `--config` continues with the run's own config. */
export function configFromFlags(flags: TrainFlags, worldSize = 1, onNote?: NoteSink): ExperimentConfig {
  if (flags.resume && !existsSync(flags.resume)) {
    const advice = checkPathAdvice(flags.resume);
    throw new UsageError(
      `--resume ${flags.resume}: no such run directory or checkpoint; ${advice === 'check the path' ? "give the directory `medvae train` printed as 'run directory:', or a checkpoint folder inside it (checkpoints/step-N)" : advice}`,
    );
  }
  if (flags.config) checkConfigFlag(flags.config);
  try {
    checkOverrides(flags.set);
  } catch (e) {
    throw e instanceof ConfigError ? new UsageError(e.message, { cause: e }) : e;
  }
  const sets = [...flags.set];
  let dataPath: string | undefined;
  if (flags.data) {
    dataPath = resolveBundledPath(flags.data);
    if (!existsSync(dataPath)) throw new UsageError(`--data ${flags.data} does not exist; ${missingDatasetAdvice(flags.data)}`);
    sets.push(`data.path=${JSON.stringify(flags.data)}`);
    // --data reads what is there, as `data info` does, unless data.format is set on the command line.
    if (!flags.set.some((s) => s.startsWith('data.format='))) {
      try {
        sets.push(`data.format=${inferFormat(dataPath)}`);
      } catch (e) {
        throw dataFlagError('--data', e);
      }
    }
  }
  if (flags.maxSteps !== undefined) sets.push(`train.max_steps=${integerFlag('--max-steps', flags.maxSteps, 0)}`);
  if (flags.epochs !== undefined) sets.push(`train.epochs=${integerFlag('--epochs', flags.epochs, 1)}`);
  if (flags.backend) sets.push(`train.backend=${flags.backend}`);
  if (flags.allowSoftwareGpu === true) sets.push('train.allow_software_gpu=true');
  if (flags.threads !== undefined) sets.push(`train.threads=${integerFlag('--threads', flags.threads, 0)}`);
  if (flags.metricsPort !== undefined) sets.push(`output.metrics_port=${integerFlag('--metrics-port', flags.metricsPort, 0, 65535)}`);
  if (flags.metricsHost) sets.push(`output.metrics_host=${JSON.stringify(flags.metricsHost)}`);
  if (flags.strict) sets.push('data.strict=true');
  const resumedRun = flags.resume ? runDirOfResume(flags.resume) : undefined;
  const runConfig = !flags.config && resumedRun ? join(resumedRun, 'config.yaml') : undefined;
  const flagKeys = new Set(sets.map((s) => s.slice(0, s.indexOf('=')).trim()));
  let cfg: ExperimentConfig;
  try {
    cfg = loadConfig({ file: flags.config ?? runConfig, sets, worldSize, onNote });
  } catch (e) {
    throw asUsageError(e, flagKeys);
  }
  cfg.data.path = resolveBundledPath(cfg.data.path);
  if (dataPath) {
    try {
      checkFormat(dataPath, cfg.data.format);
    } catch (e) {
      throw dataFlagError('--data', e);
    }
  }
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
