// eval.json: what `medvae eval` leaves in a run directory and `medvae report` reads back.
// `metrics` is a pure function of (run weights, dataset, split, n, seed); `meta` says when, where
// and how long, and is the only part that differs between two identical evaluations.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../train/atomic.ts';
import type { EvalMetrics } from './evaluate.ts';

export const EVAL_FILE = 'eval.json';

export interface MachineInfo {
  os: string;
  cpus: number;
  cpu_model: string;
  memory_gb: number;
  node: string;
}

export interface EvalFile {
  format: 'medvae-eval';
  version: 1;
  run: string;
  split: string;
  n: number;
  seed: number;
  model: { name: string; image_size: number; channels: number; param_count: number; step: number };
  metrics: EvalMetrics;
  meta: { created_at: string; seconds: number; backend: string; machine: MachineInfo };
}

export class EvalFileError extends Error {
  override name = 'EvalFileError';
}

export function writeEvalFile(runDir: string, file: EvalFile): string {
  const path = join(runDir, EVAL_FILE);
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

/** eval.json of a run, or undefined when the run was not evaluated yet. */
export function readEvalFile(runDir: string): EvalFile | undefined {
  const path = join(runDir, EVAL_FILE);
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EvalFileError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const doc = parsed as Partial<EvalFile>;
  if (doc.format !== 'medvae-eval' || doc.version !== 1) {
    throw new EvalFileError(`${path}: expected format 'medvae-eval' version 1, got ${JSON.stringify(doc.format)} version ${JSON.stringify(doc.version)}`);
  }
  if (typeof doc.metrics !== 'object' || doc.metrics === null || typeof doc.metrics.reconstruction !== 'object') {
    throw new EvalFileError(`${path}: missing 'metrics.reconstruction'`);
  }
  return doc as EvalFile;
}

export interface MetricRow {
  section: string;
  metric: string;
  value: string;
  /** How to read it: higher/lower is better, or a note. */
  note: string;
}

/** Fixed significant digits so tables and reports agree with each other. */
export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(4);
  return v.toPrecision(6).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

export function metricRows(m: EvalMetrics): MetricRow[] {
  const r = m.reconstruction;
  const s = m.sample_quality;
  const rows: MetricRow[] = [
    { section: 'reconstruction', metric: 'MSE', value: formatNumber(r.mse), note: 'lower is better; [-1, 1] units' },
    { section: 'reconstruction', metric: 'PSNR (dB)', value: formatNumber(r.psnr), note: 'higher is better' },
    { section: 'reconstruction', metric: 'SSIM', value: formatNumber(r.ssim), note: 'higher is better' },
    { section: 'reconstruction', metric: 'MS-SSIM', value: formatNumber(r.ms_ssim), note: 'higher is better' },
    { section: 'reconstruction', metric: '-ELBO (nats/image)', value: formatNumber(r.nelbo), note: `lower is better; Gaussian decoder, sigma ${formatNumber(r.decoder_sigma)}` },
    { section: 'reconstruction', metric: 'KL (nats/image)', value: formatNumber(r.kl), note: `mean over ${r.n} held-out images` },
    { section: 'samples', metric: 'Frechet feature distance', value: formatNumber(s.frechet_distance), note: `lower is better; not FID: ${s.feature_net.id}` },
    { section: 'samples', metric: 'Frechet distance, real train vs held-out', value: formatNumber(s.reference_frechet_distance), note: 'reference: a perfect generator at this n' },
    {
      section: 'samples',
      metric: 'kernel distance (MMD^2)',
      value: `${formatNumber(s.kernel_distance.mean)} ± ${formatNumber(s.kernel_distance.std_error)}`,
      note: `lower is better; ${s.kernel_distance.subsets} subsets of ${s.kernel_distance.subset_size}`,
    },
    { section: 'diversity', metric: 'MS-SSIM of sample pairs', value: formatNumber(m.diversity.ms_ssim_generated), note: `lower = more diverse; ${m.diversity.pairs} pairs` },
    { section: 'diversity', metric: 'MS-SSIM of real pairs', value: formatNumber(m.diversity.ms_ssim_real), note: 'reference' },
  ];
  if (m.tstr) {
    rows.push(
      { section: 'TSTR', metric: 'accuracy (synthetic -> real)', value: formatNumber(m.tstr.tstr.accuracy), note: `${m.tstr.n_train} synthetic training images` },
      { section: 'TSTR', metric: 'AUC (synthetic -> real)', value: formatNumber(m.tstr.tstr.auc), note: 'macro, one-vs-rest / per finding' },
      { section: 'TSTR', metric: 'accuracy (real -> real)', value: formatNumber(m.tstr.trtr.accuracy), note: 'TRTR reference' },
      { section: 'TSTR', metric: 'AUC (real -> real)', value: formatNumber(m.tstr.trtr.auc), note: 'TRTR reference' },
    );
  }
  return rows;
}

/** A plain-text table for the terminal. */
export function formatEvalTable(file: EvalFile): string {
  const rows = metricRows(file.metrics);
  const header = { section: 'section', metric: 'metric', value: 'value', note: 'note' };
  const all = [header, ...rows];
  const w = (k: keyof MetricRow): number => Math.max(...all.map((r) => r[k].length));
  const line = (r: MetricRow): string => `${r.section.padEnd(w('section'))}  ${r.metric.padEnd(w('metric'))}  ${r.value.padStart(w('value'))}  ${r.note}`;
  const title = `${file.run}: ${file.model.name}, split '${file.split}', n=${file.n}, seed=${file.seed}`;
  return [title, line(header), ...rows.map(line)].join('\n');
}
