// `medvae-dist`: data-parallel training, one worker process per device. Takes every flag of
// `medvae train` and shares its configs, run layout, checkpoints and resume. Registering it loads
// only its flags; what it does (dist-action.ts) loads when it runs.
import { Command } from 'commander';
import { addTrainFlags } from './train-flags.ts';
import { addDistFlags, type DistFlags } from './dist-flags.ts';
import { usageExitCodes } from './errors.ts';

const program = addDistFlags(
  addTrainFlags(
    usageExitCodes(new Command('medvae-dist')).description(
      'data-parallel training: one worker process per GPU (or CPU worker), gradients averaged every step',
    ),
  ),
).action(async (flags: DistFlags) => (await import('./dist-action.ts')).distCommand(flags));

await program.parseAsync(process.argv);
