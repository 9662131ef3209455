// `medvae export-web`: a trained run as a static site that explores it in any browser (src/web/).
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend } from '../backend/index.ts';
import { loadRun } from '../run/checkpoint.ts';
import { checkExportTarget, exportWebSite, ExportTargetError } from '../web/export-site.ts';
import { SITE_FILES } from '../web/site-data.ts';
import { allowSoftwareGpuOption, backendFromFlags, backendOption, type BackendFlags } from './backend-flags.ts';
import { integerFlag, runCommand, UsageError } from './errors.ts';
import { checkpointOption, RUN_HELP, runCheckpointOf, type RunFlagValues } from './run-option.ts';

interface ExportFlags extends BackendFlags, RunFlagValues {
  out: string;
  reference: string;
  seed: string;
  batch: string;
  debug?: boolean;
}

async function exportWebCommand(flags: ExportFlags): Promise<void> {
  const reference = integerFlag('--reference', flags.reference, 1);
  const batch = integerFlag('--batch', flags.batch, 1);
  const out = resolve(flags.out);
  try {
    checkExportTarget(out);
  } catch (e) {
    if (e instanceof ExportTargetError) throw new UsageError(e.message);
    throw e;
  }
  const checkpoint = runCheckpointOf(flags);
  const { choice, options } = backendFromFlags(flags);
  await initBackend(choice, undefined, options);
  const run = await loadRun(checkpoint);
  try {
    const result = await exportWebSite(run, {
      out,
      reference,
      seed: Number(flags.seed),
      batch,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    const mb = (bytes: number): string => (bytes / 1e6).toFixed(2);
    process.stdout.write(
      `wrote ${result.out} (${mb(result.totalBytes)} MB; page and script ${mb(result.pageBytes)} MB)\n` +
        `open it: double-click ${SITE_FILES.page} in that folder, or open ${pathToFileURL(`${result.out}/${SITE_FILES.page}`).href} in a web browser;\n` +
        'or copy the folder to any web server. It works offline, and images opened in it never leave the computer.\n',
    );
  } finally {
    run.model.dispose();
  }
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
    .action((f: ExportFlags) => runCommand(Boolean(f.debug), () => exportWebCommand(f)));
}
