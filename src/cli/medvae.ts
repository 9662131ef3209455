// `medvae`: the command line. Each command lives in its own module and registers itself here: its
// name, flags and help, all light; what it does is imported only when it runs, so `--help` and a
// usage error load no TF.js.
import { Command } from 'commander';
import { registerTrainCommand } from './train-command.ts';
import { registerGenerateCommands } from './generate-commands.ts';
import { registerDataCommands } from './data-command.ts';
import { registerEvalCommands } from './eval-command.ts';
import { registerRestoreCommands } from './restore-commands.ts';
import { registerGpusCommand } from './gpus-command.ts';
import { registerWebCommand } from './web-command.ts';
import { usageExitCodes } from './errors.ts';

const program = usageExitCodes(new Command('medvae')).description('Train VAE-family generative models on medical images (TensorFlow.js)');
registerTrainCommand(program);
registerGenerateCommands(program);
registerDataCommands(program);
registerEvalCommands(program);
registerRestoreCommands(program);
registerGpusCommand(program);
registerWebCommand(program);
await program.parseAsync(process.argv);
