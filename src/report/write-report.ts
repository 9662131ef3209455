// `medvae report`: the runs' summaries into one report.html, written atomically.
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { reportHtml } from './html.ts';
import { readRunSummary } from './run-summary.ts';

export interface ReportOptions {
  /** Further runs shown side by side with the first. */
  compare?: string[];
  /** Output file; default <runDir>/report.html. */
  out?: string;
}

export function writeReport(runDir: string, options: ReportOptions = {}): string {
  const runs = [runDir, ...(options.compare ?? [])].map(readRunSummary);
  // runs[0].dir: the run's own directory, also when runDir named one of its checkpoints.
  const out = options.out ?? join(runs[0]!.dir, 'report.html');
  writeFileAtomic(out, reportHtml(runs, new Date()));
  return out;
}
