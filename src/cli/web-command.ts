// `medvae export-web`: a trained run as a static site that explores it in any browser (src/web/).
// Registering it loads only its flags; what it does (web-action.ts) loads when it runs.
import type { Command } from 'commander';
import { allowSoftwareGpuOption, backendOption, type BackendFlags } from './backend-flags.ts';
import { runCommand } from './errors.ts';
import { checkpointOption, RUN_HELP, type RunFlagValues } from './run-option.ts';

export interface ExportFlags extends BackendFlags, RunFlagValues {
  out: string;
  reference: string;
  seed: string;
  batch: string;
  debug?: boolean;
}

export function registerWebCommand(program: Command): void {
  program
    .command('export-web')
    .description('write a static web page that explores a trained model in any browser (samples, interpolation, anomaly score, fill-in)')
    .requiredOption('--run <dir>', RUN_HELP)
    .addOption(checkpointOption())
    .requiredOption('--out <folder>', 'the site folder to write (new, or an earlier export to replace)')
    .option('--reference <n>', "training images scored as the reference of the page's anomaly score", '500')
    .option('--seed <n>', 'seed of the scoring noise and of the choice of reference images', '0')
    .option('--batch <n>', 'images scored at once', '32')
    .addOption(backendOption())
    .addOption(allowSoftwareGpuOption())
    .option('--debug', 'print stack traces on errors')
    .action((f: ExportFlags) => runCommand(Boolean(f.debug), async () => (await import('./web-action.ts')).exportWebCommand(f)));
}
