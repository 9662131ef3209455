// What the restoration benches (restore.ts, denoise.ts) print: JSON lines on stdout, a meta line
// first (commit, date, backend, machine), and on each result line the run it measured.
import { execFileSync } from 'node:child_process';
import type { ExperimentConfig } from '../src/config/schema.ts';
import { initBackend } from '../src/backend/index.ts';
import { machineInfo } from '../src/eval/run-eval.ts';
import type { TrainState } from '../src/run/checkpoint.ts';

export const emit = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

export const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Starts the backend and prints the meta line; `grids` is where the bench writes its pictures. */
export async function startBench(grids: string): Promise<void> {
  const backend = await initBackend('auto', log);
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  emit({ kind: 'meta', commit, date: new Date().toISOString(), backend: backend.name, machine: machineInfo(), grids });
}

/** The fields of a result line that name the run it came from. */
export function runFields(
  dir: string,
  config: ExperimentConfig,
  state: TrainState,
): { run: string; step: number; epoch: number; epochs: number; classes: number[]; image_size: number; kld_weight: number | 'M_N' } {
  return {
    run: dir,
    step: state.step,
    epoch: state.epoch,
    epochs: config.train.epochs,
    classes: config.data.classes,
    image_size: config.model.image_size,
    kld_weight: config.model.kld_weight,
  };
}
