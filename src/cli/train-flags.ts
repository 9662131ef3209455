// The flags `medvae train` and `medvae-dist` share, as commander defines them: one definition
// serves both commands. Loads no more than commander and the config's defaults, so that a
// command's --help and commander's usage errors cost a process little; train-options.ts turns the
// values into a checked config.
import { type Command, Option } from 'commander';
import { allowSoftwareGpuOption, backendOption, type BackendFlags } from './backend-flags.ts';
import { DEFAULT_CONFIG } from '../config/schema.ts';
import type { LogFormat } from '../run/progress.ts';

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
    .option('--max-steps <n>', 'stop after n optimizer steps (still writes grids and a checkpoint; 0: no limit)')
    .option('--epochs <n>', 'number of epochs (overrides train.epochs)')
    .option('--resume <dir>', 'continue a run (its directory) or a checkpoint exactly where it stopped')
    .option('--set <key=value>', 'override any config key, e.g. --set train.lr=0.001 (repeatable)', collect, [])
    .addOption(backendOption())
    .addOption(allowSoftwareGpuOption())
    .option('--threads <n>', 'compute threads of the native backend (train.threads; default: every core, shared among local workers)')
    .addOption(new Option('--log-format <format>', 'progress output').choices(['auto', 'tty', 'plain', 'json']).default('auto'))
    .option('--metrics-port <port>', `serve Prometheus metrics on this port (0 = off; default ${DEFAULT_CONFIG.output.metrics_port})`)
    .option('--metrics-host <host>', 'address the metrics endpoint binds (default 127.0.0.1)')
    .option('--strict', 'stop at the first image that cannot be decoded instead of skipping it (data.strict)')
    .option('--debug', 'print stack traces on errors');
}
