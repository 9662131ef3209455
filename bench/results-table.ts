// Prints, for each run directory given, one JSON line with its evaluation numbers (baselines
// included), epochs, steps and the machine, then a Markdown table of the same numbers (the README's
// results section) with the baseline rows under the models: the constant mid-grey image and the
// training-mean image for reconstruction, real vs real for the sample numbers.
import { readEvalFile, type EvalFile } from '../src/eval/eval-file.ts';
import { readRunConfig } from '../src/run/checkpoint.ts';
import { readMetricsLog } from '../src/run/metrics-log.ts';
import { join } from 'node:path';

const round = (v: number | null | undefined, digits = 4): number | null =>
  v === null || v === undefined ? null : Number(v.toPrecision(digits));
const runs = process.argv.slice(2).map((run) => {
  const evaluation = readEvalFile(run);
  if (!evaluation) throw new Error(`${run}: no eval.json; run medvae eval --run ${run} first`);
  return { run, evaluation };
});
const rows = runs.map(({ run, evaluation }) => {
  const config = readRunConfig(run);
  const log = readMetricsLog(join(run, 'metrics.jsonl'));
  const epochs = log.filter((r) => r.kind === 'epoch' && r.complete === true).length;
  const m = evaluation.metrics;
  const b = m.reconstruction.baselines;
  return {
    run,
    model: config.model.name,
    image_size: config.model.image_size,
    epochs,
    steps: evaluation.model.step,
    psnr_db: round(m.reconstruction.psnr),
    ssim: round(m.reconstruction.ssim),
    ms_ssim: round(m.reconstruction.ms_ssim),
    psnr_grey_db: round(b.constant_grey.psnr),
    psnr_train_mean_db: round(b.train_mean.psnr),
    ssim_train_mean: round(b.train_mean.ssim),
    ms_ssim_train_mean: round(b.train_mean.ms_ssim),
    nelbo: round(m.reconstruction.nelbo),
    frechet_feature_distance: round(m.sample_quality.frechet_distance),
    frechet_reference: round(m.sample_quality.reference_frechet_distance),
    kernel_distance: round(m.sample_quality.kernel_distance.mean),
    kernel_reference: round(m.sample_quality.reference_kernel_distance.mean),
    precision: round(m.sample_quality.precision_recall?.precision),
    recall: round(m.sample_quality.precision_recall?.recall),
    precision_reference: round(m.sample_quality.reference_precision_recall?.precision),
    recall_reference: round(m.sample_quality.reference_precision_recall?.recall),
    diversity_ms_ssim_samples: round(m.diversity.ms_ssim_generated),
    diversity_ms_ssim_real: round(m.diversity.ms_ssim_real),
    tstr_accuracy: round(m.tstr?.tstr.accuracy),
    tstr_auc: round(m.tstr?.tstr.auc),
    trtr_accuracy: round(m.tstr?.trtr.accuracy),
    trtr_auc: round(m.tstr?.trtr.auc),
    majority_accuracy: round(m.tstr?.majority_accuracy),
    real_plus_synthetic_accuracy: round(m.tstr?.augmentation.real_plus_synthetic.accuracy),
    real_only_accuracy: round(m.tstr?.augmentation.real_only.accuracy),
    fitted_frechet_feature_distance: round(m.fitted_posterior?.sample_quality.frechet_distance),
    fitted_kernel_distance: round(m.fitted_posterior?.sample_quality.kernel_distance.mean),
    fitted_precision: round(m.fitted_posterior?.sample_quality.precision_recall?.precision),
    fitted_recall: round(m.fitted_posterior?.sample_quality.precision_recall?.recall),
    fitted_diversity_ms_ssim_samples: round(m.fitted_posterior?.diversity.ms_ssim_generated),
    fitted_tstr_accuracy: round(m.fitted_posterior?.tstr?.tstr.accuracy),
    fitted_tstr_auc: round(m.fitted_posterior?.tstr?.tstr.auc),
    fitted_real_plus_synthetic_accuracy: round(m.fitted_posterior?.tstr?.augmentation.real_plus_synthetic.accuracy),
    feature_net: m.sample_quality.feature_net.id,
    backend: evaluation.meta.backend,
    machine: evaluation.meta.machine,
  };
});
for (const r of rows) console.log(JSON.stringify(r));

type Cells = Record<string, string>;
const cols = [
  'model',
  'epochs',
  'PSNR dB',
  'SSIM',
  'MS-SSIM',
  '-ELBO',
  'Fréchet feat. dist.',
  'kernel dist.',
  'sample-pair MS-SSIM',
  'TSTR acc / AUC',
  'TRTR acc / AUC',
  'real+synthetic acc',
];
const dash = (v: number | null): string => (v === null ? '—' : String(v));
const modelCells = (r: (typeof rows)[number]): Cells => ({
  model: r.model,
  epochs: String(r.epochs),
  'PSNR dB': dash(r.psnr_db),
  SSIM: dash(r.ssim),
  'MS-SSIM': dash(r.ms_ssim),
  '-ELBO': dash(r.nelbo),
  'Fréchet feat. dist.': dash(r.frechet_feature_distance),
  'kernel dist.': dash(r.kernel_distance),
  'sample-pair MS-SSIM': dash(r.diversity_ms_ssim_samples),
  'TSTR acc / AUC': r.tstr_accuracy === null ? '—' : `${r.tstr_accuracy} / ${r.tstr_auc}`,
  'TRTR acc / AUC': r.trtr_accuracy === null ? '—' : `${r.trtr_accuracy} / ${r.trtr_auc}`,
  'real+synthetic acc':
    r.real_plus_synthetic_accuracy === null ? '—' : `${r.real_plus_synthetic_accuracy} (real alone ${r.real_only_accuracy})`,
});
/** Baseline rows of one evaluation; runs scored on the same held-out images give identical ones. */
function baselineCells(e: EvalFile): Cells[] {
  const m = e.metrics;
  const scores = (name: string, s: typeof m.reconstruction.baselines.train_mean): Cells => ({
    model: `*${name}*`,
    'PSNR dB': String(round(s.psnr)),
    SSIM: String(round(s.ssim)),
    'MS-SSIM': String(round(s.ms_ssim)),
  });
  const majority: Cells = m.tstr ? { 'TSTR acc / AUC': `${round(m.tstr.majority_accuracy)} (majority) / 0.5` } : {};
  return [
    scores('constant grey image', m.reconstruction.baselines.constant_grey),
    scores('training-mean image', m.reconstruction.baselines.train_mean),
    {
      model: '*real vs real*',
      'Fréchet feat. dist.': String(round(m.sample_quality.reference_frechet_distance)),
      'kernel dist.': String(round(m.sample_quality.reference_kernel_distance.mean)),
      'sample-pair MS-SSIM': String(round(m.diversity.ms_ssim_real)),
      ...majority,
    },
  ];
}
const lines = [
  ...rows.map(modelCells),
  ...[...new Map(runs.flatMap(({ evaluation }) => baselineCells(evaluation)).map((c) => [JSON.stringify(c), c])).values()],
];
console.log(`\n| ${cols.join(' | ')} |\n|${cols.map(() => ' --- ').join('|')}|`);
for (const c of lines) console.log(`| ${cols.map((k) => c[k] ?? '').join(' | ')} |`);
