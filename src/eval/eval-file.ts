// eval.json: what `medvae eval` leaves in a run directory and `medvae report` reads back.
// `metrics` is a pure function of (run weights, dataset, split, n, seed); `meta` says when, where
// and how long, and is the only part that differs between two identical evaluations.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import type { EvalMetrics } from './evaluate.ts';
import type { TstrMetrics, UtilitySpread } from './utility.ts';
import type { KernelDistance } from './kid.ts';
import type { MembershipInference } from './membership.ts';
import type { DistanceComparison, SamplePrivacy } from './privacy.ts';
import type { PairedInterval, Spread } from './stats.ts';
import type { ImageScores } from './reconstruction.ts';

export const EVAL_FILE = 'eval.json';
/**
 * 2: baselines next to the numbers, valid-window SSIM, the held-out indices, real + synthetic.
 * 3: precision and recall, privacy (closest training images), membership inference, utility over classifier seeds.
 * 4: the default sampler chosen on the validation split (metrics.sampler.chosen_on, frechet_chosen_on), not the evaluated one.
 */
export const EVAL_FILE_VERSION = 4;

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

/** Mean ± standard deviation over seeds. */
export function formatSpread(s: Spread): string {
  return `${formatNumber(s.mean)} ± ${formatNumber(s.std)}`;
}

/** A mean difference with its interval, e.g. "0.012 [-0.003, 0.027]". */
export function formatInterval(i: PairedInterval): string {
  return `${formatNumber(i.mean)} [${formatNumber(i.low)}, ${formatNumber(i.high)}]`;
}

/** Fréchet and kernel distances, precision and recall of generated images against held-out ones, under `section`. */
function qualityRows(s: EvalMetrics['sample_quality'], section: string): MetricRow[] {
  return [
    {
      section,
      metric: 'Frechet feature distance',
      value: formatNumber(s.frechet_distance),
      baseline: `real vs real ${formatNumber(s.reference_frechet_distance)}`,
      note: `lower is better; not FID: ${s.feature_net.id}`,
    },
    {
      section,
      metric: 'kernel distance (MMD^2)',
      value: formatKernelDistance(s.kernel_distance),
      baseline: `real vs real ${formatKernelDistance(s.reference_kernel_distance)}`,
      note: `lower is better; ${kernelNote(s.kernel_distance)}`,
    },
    {
      section,
      metric: `precision (k=${s.precision_recall.k})`,
      value: formatNumber(s.precision_recall.precision),
      baseline: `real vs real ${formatNumber(s.reference_precision_recall.precision)}`,
      note: "higher is better; share of samples inside the held-out images' k-NN manifold (garbage draws lower it)",
    },
    {
      section,
      metric: `recall (k=${s.precision_recall.k})`,
      value: formatNumber(s.precision_recall.recall),
      baseline: `real vs real ${formatNumber(s.reference_precision_recall.recall)}`,
      note: "higher is better; share of held-out images inside the samples' k-NN manifold (dropped modes lower it)",
    },
  ];
}

/** Sample rows; `prefix` names the latent the samples were drawn from when it is not the prior. */
function sampleRows(m: Pick<EvalMetrics, 'sample_quality' | 'diversity'>, prefix = ''): MetricRow[] {
  return [
    ...qualityRows(m.sample_quality, `${prefix}samples`),
    {
      section: `${prefix}diversity`,
      metric: 'MS-SSIM of sample pairs',
      value: formatNumber(m.diversity.ms_ssim_generated),
      baseline: `real pairs ${formatNumber(m.diversity.ms_ssim_real)}`,
      note: `lower = more diverse; ${m.diversity.pairs} pairs`,
    },
  ];
}

function distanceRows(d: DistanceComparison, space: string, prefix: string, trainImages: number): MetricRow[] {
  const row = (metric: string, value: number, baseline: string, note: string): MetricRow => ({
    section: `${prefix}privacy`,
    metric: `${metric} (${space})`,
    value: formatNumber(value),
    baseline,
    note,
  });
  return [
    row(
      'samples closer to training than held-out p1',
      d.share_below_heldout_p1,
      'held-out 0.01',
      `well above = copies of training images; closest of ${trainImages} training images`,
    ),
    row('samples closer to training than held-out p5', d.share_below_heldout_p5, 'held-out 0.05', 'well above = copies of training images'),
    row('samples farther from training than held-out p99', d.share_above_heldout_p99, 'held-out 0.01', 'well above = samples off the data'),
    row(
      'median distance to closest training image',
      d.sample_median,
      `held-out ${formatNumber(d.heldout_median)}`,
      `closest sample ${formatNumber(d.sample_min)}`,
    ),
  ];
}

function privacyRows(p: SamplePrivacy, prefix = ''): MetricRow[] {
  const closer = (space: string, value: number): MetricRow => ({
    section: `${prefix}privacy`,
    metric: `samples whose closest image is a training one (${space})`,
    value: formatNumber(value),
    baseline: 'no copying 0.5',
    note: `among ${p.n_heldout} training and ${p.n_heldout} held-out images; towards 1 = copies, blur does not raise it`,
  });
  return [
    closer('pixels', p.share_closer_to_train.pixel),
    closer('features', p.share_closer_to_train.feature),
    ...distanceRows(p.pixel, 'pixels, RMS', prefix, p.n_train),
    ...distanceRows(p.feature, 'features', prefix, p.n_train),
  ];
}

function membershipRows(m: MembershipInference): MetricRow[] {
  const chance = `chance 0.5 ± ${formatNumber(m.chance_halfwidth_95)}`;
  const note = `${m.n_train} training vs ${m.n_heldout} held-out images; above chance = the model tells its training images apart`;
  return [
    { section: 'membership', metric: 'AUROC by -ELBO', value: formatNumber(m.neg_elbo.auroc), baseline: chance, note },
    {
      section: 'membership',
      metric: 'AUROC by reconstruction MSE',
      value: formatNumber(m.recon_mse.auroc),
      baseline: chance,
      note: `posterior-mean reconstruction; mean MSE training ${formatNumber(m.recon_mse.train_mean)}, held-out ${formatNumber(m.recon_mse.heldout_mean)}`,
    },
  ];
}

/** The classifier numbers over seeds: mean ± std, and the paired differences' 95% intervals. */
function seedRows(t: TstrMetrics, prefix: string): MetricRow[] {
  const seeds = t.over_seeds.seeds.length;
  const rows = (score: string, u: UtilitySpread): MetricRow[] => [
    {
      section: `${prefix}TSTR`,
      metric: `${score} over seeds (synthetic -> real)`,
      value: formatSpread(u.tstr),
      baseline: `real -> real ${formatSpread(u.trtr)}`,
      note: `TSTR - TRTR ${formatInterval(u.tstr_minus_trtr)} (95%, paired t over ${seeds} classifier seeds)`,
    },
    {
      section: `${prefix}TSTR`,
      metric: `${score} over seeds (real + synthetic -> real)`,
      value: formatSpread(u.real_plus_synthetic),
      baseline: `real alone ${formatSpread(u.real_only)}`,
      note: `gain ${formatInterval(u.synthetic_gain)} (95%, paired t over ${seeds} classifier seeds)`,
    },
  ];
  return [...rows('accuracy', t.over_seeds.accuracy), ...(t.over_seeds.auc ? rows('AUC', t.over_seeds.auc) : [])];
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
    ...seedRows(t, prefix),
  ];
}

export function metricRows(m: EvalMetrics): MetricRow[] {
  const fitted = m.fitted_posterior;
  const prefix = 'fitted latent: ';
  return [
    ...reconstructionRows(m.reconstruction),
    ...sampleRows(m),
    ...(m.privacy ? privacyRows(m.privacy) : []),
    ...(m.membership ? membershipRows(m.membership) : []),
    ...(m.tstr ? tstrRows(m.tstr) : []),
    ...(m.training_reconstructions ? qualityRows(m.training_reconstructions.sample_quality, 'training reconstructions') : []),
    ...(fitted
      ? [
          ...sampleRows(fitted, prefix),
          ...(fitted.privacy ? privacyRows(fitted.privacy, prefix) : []),
          ...(fitted.tstr ? tstrRows(fitted.tstr, prefix) : []),
        ]
      : []),
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
