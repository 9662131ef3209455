// metrics.jsonl, the run's own record: one JSON object per line.
//   {"kind":"start", step, epoch, backend, world_size, host, ...}   each time training (re)starts
//   {"kind":"step", step, epoch, terms, lr, images_per_s, step_ms, data_wait_ms, allreduce_ms, time}
//   {"kind":"epoch", epoch, step, complete, means, lr, images_per_s, seconds, time}
// Numbers count as the console does: `step` is the optimizer steps done (1 after the first),
// `epoch` the epoch the step belongs to from 1 ("epoch 1/100" on the console is "epoch":1 here;
// a start record names the epoch about to run). Runs written before this counted epochs from 0.
// Readers skip a last line still being written by a running trainer.
import { existsSync, readFileSync } from 'node:fs';

export interface MetricsRecord {
  kind: 'start' | 'step' | 'epoch';
  step: number;
  /** From 1, as the console shows it. */
  epoch: number;
  terms?: Record<string, number>;
  means?: Record<string, number>;
  backend?: string;
  [key: string]: unknown;
}

export function readMetricsLog(file: string): MetricsRecord[] {
  if (!existsSync(file)) return [];
  const out: MetricsRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      // A line cut short by a trainer writing it right now, or by a crash: the rest still counts.
    }
  }
  return out;
}

/** One series per loss term: per step (`kind` 'step', from terms) or per epoch ('epoch', from means). */
export function termSeries(records: readonly MetricsRecord[], kind: 'step' | 'epoch'): Map<string, [number, number][]> {
  const series = new Map<string, [number, number][]>();
  for (const rec of records) {
    const values = kind === 'step' ? rec.terms : rec.means;
    if (rec.kind !== kind || !values) continue;
    for (const [name, v] of Object.entries(values)) {
      if (!series.has(name)) series.set(name, []);
      series.get(name)!.push([rec.step, v]);
    }
  }
  return series;
}
