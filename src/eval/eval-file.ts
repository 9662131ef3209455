// eval.json: what `medvae eval` leaves in a run directory and `medvae report` reads back.
// `metrics` is a pure function of (run weights, dataset, split, n, seed); `meta` says when, where
// and how long, and is the only part that differs between two identical evaluations.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import type { EvalMetrics, TstrMetrics } from './evaluate.ts';
import type { KernelDistance } from './kid.ts';
import type { ImageScores } from './reconstruction.ts';

export const EVAL_FILE = 'eval.json';
/** 2: baselines next to the numbers, valid-window SSIM, the held-out indices, real + synthetic. */
export const EVAL_FILE_VERSION = 2;

export interface MachineInfo {
  os: string;
  cpus: number;
  cpu_model: string;
  memory_gb: number;
  node: string;
}

export interface EvalFile {
  format: 'medvae-eval';
  version: typeof EVAL_FILE_VERSION;
  run: string;
  split: string;
  n: number;
  seed: number;
  /** Indices into the held-out split of the images scored (a seeded subset, ascending). */
  heldout_indices: number[];
  /** `temperature`: the Gumbel-softmax temperature the evaluation used (JointVAE), else null. */
  model: { name: string; image_size: number; channels: number; param_count: number; step: number; temperature: number | null };
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
  if (doc.format !== 'medvae-eval' || doc.version !== EVAL_FILE_VERSION) {
    throw new EvalFileError(
      `${path}: expected format 'medvae-eval' version ${EVAL_FILE_VERSION}, got ${JSON.stringify(doc.format)} version ${JSON.stringify(doc.version)}; run medvae eval again`,
    );
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
  /** What the number is to be read against, on the same images ('' when nothing). */
  baseline: string;
  /** How to read it: higher/lower is better, or a note. */
  note: string;
}

/** Fixed significant digits so tables and reports agree with each other. */
export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(4);
  return v
    .toPrecision(6)
    .replace(/(\.\d*?)0+$/, '$1')
    .replace(/\.$/, '');
}

/** A kernel distance with its standard error, or alone when it was computed once over all images. */
export function formatKernelDistance(k: KernelDistance): string {
  return k.std_error === null ? formatNumber(k.mean) : `${formatNumber(k.mean)} ± ${formatNumber(k.std_error)}`;
}

function kernelNote(k: KernelDistance): string {
  return k.std_error === null
    ? `once over all ${k.subset_size} images per side (subsets could not differ)`
    : `${k.subsets} subsets of ${k.subset_size}`;
}

function reconstructionRows(r: EvalMetrics['reconstruction']): MetricRow[] {
  const { constant_grey: grey, train_mean: mean } = r.baselines;
  const row = (metric: string, key: keyof ImageScores, note: string): MetricRow => ({
    section: 'reconstruction',
    metric,
    value: formatNumber(r[key]),
    baseline: `grey ${formatNumber(grey[key])}, train mean ${formatNumber(mean[key])}`,
    note,
  });
  return [
    row('MSE', 'mse', 'lower is better; [-1, 1] units'),
    row('PSNR (dB)', 'psnr', 'higher is better'),
    row('SSIM', 'ssim', 'higher is better; valid 11x11 windows'),
    row('MS-SSIM', 'ms_ssim', 'higher is better; valid 11x11 windows'),
    {
      section: 'reconstruction',
      metric: '-ELBO (nats/image)',
      value: formatNumber(r.nelbo),
      baseline: '',
      note: `lower is better; Gaussian decoder, sigma ${formatNumber(r.decoder_sigma)}`,
    },
    {
      section: 'reconstruction',
      metric: 'KL (nats/image)',
      value: formatNumber(r.kl),
      baseline: '',
      note: `mean over ${r.n} held-out images`,
    },
  ];
}

/** Sample rows; `prefix` names the latent the samples were drawn from when it is not the prior. */
function sampleRows(m: Pick<EvalMetrics, 'sample_quality' | 'diversity'>, prefix = ''): MetricRow[] {
  const s = m.sample_quality;
  return [
    {
      section: `${prefix}samples`,
      metric: 'Frechet feature distance',
      value: formatNumber(s.frechet_distance),
      baseline: `real vs real ${formatNumber(s.reference_frechet_distance)}`,
      note: `lower is better; not FID: ${s.feature_net.id}`,
    },
    {
      section: `${prefix}samples`,
      metric: 'kernel distance (MMD^2)',
      value: formatKernelDistance(s.kernel_distance),
      baseline: `real vs real ${formatKernelDistance(s.reference_kernel_distance)}`,
      note: `lower is better; ${kernelNote(s.kernel_distance)}`,
    },
    {
      section: `${prefix}diversity`,
      metric: 'MS-SSIM of sample pairs',
      value: formatNumber(m.diversity.ms_ssim_generated),
      baseline: `real pairs ${formatNumber(m.diversity.ms_ssim_real)}`,
      note: `lower = more diverse; ${m.diversity.pairs} pairs`,
    },
  ];
}

function tstrRows(t: TstrMetrics, prefix = ''): MetricRow[] {
  const majority = `majority class ${formatNumber(t.majority_accuracy)}`;
  const a = t.augmentation;
  const row = (metric: string, value: number | null, baseline: string, note: string): MetricRow => ({
    section: `${prefix}TSTR`,
    metric,
    value: formatNumber(value),
    baseline,
    note,
  });
  return [
    row('accuracy (synthetic -> real)', t.tstr.accuracy, majority, `${t.n_train} synthetic training images`),
    row('AUC (synthetic -> real)', t.tstr.auc, 'chance 0.5', 'macro, one-vs-rest / per finding'),
    row('accuracy (real -> real)', t.trtr.accuracy, majority, `TRTR: ${t.n_train} real training images`),
    row('AUC (real -> real)', t.trtr.auc, 'chance 0.5', 'TRTR'),
    row(
      'AUC of samples vs their labels',
      t.conditioning.auc,
      'chance 0.5',
      'the TRTR classifier on the synthetic images: do they show their label?',
    ),
    row(
      'accuracy (real + synthetic -> real)',
      a.real_plus_synthetic.accuracy,
      `real alone ${formatNumber(a.real_only.accuracy)}`,
      `${a.n_real} real + ${a.n_synthetic} synthetic training images`,
    ),
    row(
      'AUC (real + synthetic -> real)',
      a.real_plus_synthetic.auc,
      `real alone ${formatNumber(a.real_only.auc)}`,
      `real alone: the same ${a.n_real} real images`,
    ),
  ];
}

export function metricRows(m: EvalMetrics): MetricRow[] {
  const fitted = m.fitted_posterior;
  const prefix = 'fitted latent: ';
  return [
    ...reconstructionRows(m.reconstruction),
    ...sampleRows(m),
    ...(m.tstr ? tstrRows(m.tstr) : []),
    ...(fitted ? [...sampleRows(fitted, prefix), ...(fitted.tstr ? tstrRows(fitted.tstr, prefix) : [])] : []),
  ];
}

/** A plain-text table for the terminal. */
export function formatEvalTable(file: EvalFile): string {
  const rows = metricRows(file.metrics);
  const header: MetricRow = { section: 'section', metric: 'metric', value: 'value', baseline: 'baseline', note: 'note' };
  const all = [header, ...rows];
  const w = (k: keyof MetricRow): number => Math.max(...all.map((r) => r[k].length));
  const line = (r: MetricRow): string =>
    `${r.section.padEnd(w('section'))}  ${r.metric.padEnd(w('metric'))}  ${r.value.padStart(w('value'))}  ${r.baseline.padEnd(w('baseline'))}  ${r.note}`;
  const temperature = file.model.temperature === null ? '' : `, temperature ${formatNumber(file.model.temperature)}`;
  const title = `${file.run}: ${file.model.name} at step ${file.model.step}${temperature}, split '${file.split}', n=${file.n}, seed=${file.seed}`;
  return [title, line(header), ...rows.map(line)].join('\n');
}
