// `--run` and `--checkpoint`, the flags of every command that reads a trained run: the path is
// checked and the checkpoint chosen (newest intact, or the one named) before the backend starts.
import { Option } from 'commander';
import { selectRunCheckpoint, type RunCheckpoint } from '../run/run-checkpoint.ts';

export const RUN_HELP = 'run directory (runs/<name>), or one of its checkpoint folders';

export function checkpointOption(): Option {
  return new Option(
    '--checkpoint <name>',
    'which checkpoint: step-N (or N), best, or latest (the newest that proves intact; a damaged newer one is named and skipped)',
  );
}

export interface RunFlagValues {
  run: string;
  checkpoint?: string;
}

/** The run and checkpoint the flags name; a passed-over damaged checkpoint is one line on stderr. */
export function runCheckpointOf(flags: RunFlagValues): RunCheckpoint {
  return selectRunCheckpoint(flags.run, {
    checkpoint: flags.checkpoint,
    log: (line) => process.stderr.write(`${line}\n`),
  });
}
