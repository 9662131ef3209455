// `medvae train`: one process, one device (GPU through tfjs-node-gpu, or the CPU). Registering it
// loads only its flags; what it does (train-action.ts) loads when it runs.
import type { Command } from 'commander';
import { addTrainFlags, type TrainFlags } from './train-flags.ts';

export function registerTrainCommand(program: Command): void {
  addTrainFlags(program.command('train').description('train a model (default: Vanilla VAE on the bundled RetinaMNIST, 64x64)')).action(
    async (flags: TrainFlags) => (await import('./train-action.ts')).trainCommand(flags),
  );
}
