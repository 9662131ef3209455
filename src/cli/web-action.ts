// What `medvae export-web` does once its flags have parsed (web-command.ts registers it). Loaded
// only when it runs: it brings TF.js.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initBackend } from '../backend/index.ts';
import { loadRun } from '../run/checkpoint.ts';
import { checkExportTarget, exportWebSite, ExportTargetError } from '../web/export-site.ts';
import { SITE_FILES } from '../web/site-data.ts';
import { backendFromFlags } from './backend-flags.ts';
import { integerFlag, UsageError } from './errors.ts';
import { runCheckpointOf } from './run-option.ts';
import type { ExportFlags } from './web-command.ts';

export async function exportWebCommand(flags: ExportFlags): Promise<void> {
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
