// Prints, for each run directory given, one JSON line with its evaluation numbers (baselines
// included), epochs, steps and the machine (./results-rows.ts says what each key is), then a
// Markdown table of the headline numbers with the baseline rows under the models: the constant
// mid-grey image and the training-mean image for reconstruction, real vs real for the sample
// numbers. bench/results-doc.ts turns the JSON lines into docs/results.md.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readEvalFile } from '../src/eval/eval-file.ts';
import { readRunConfig } from '../src/run/checkpoint.ts';
import { readMetricsLog } from '../src/run/metrics-log.ts';
import { LATENT_DENSITY_FILE } from '../src/models/latent-density.ts';
import { resultRow, SAMPLERS, type ResultRow, type Sampler } from './results-rows.ts';

/** The sampler of the per-epoch grid at `step` (src/train/pictures.ts): the density's preferred one, the prior without a density. */
function gridSampler(run: string, step: number): Sampler | null {
  const checkpoint = join(run, 'checkpoints', `step-${String(step).padStart(7, '0')}`);
  if (!existsSync(checkpoint)) return null;
  const file = join(checkpoint, LATENT_DENSITY_FILE);
  if (!existsSync(file)) return 'prior';
  const preferred = (JSON.parse(readFileSync(file, 'utf8')) as { preferred?: unknown }).preferred;
  return SAMPLERS.find((s) => s === preferred) ?? null;
}

const rows: ResultRow[] = process.argv.slice(2).map((run) => {
  const evaluation = readEvalFile(run);
  if (!evaluation) throw new Error(`${run}: no eval.json; run medvae eval --run ${run} first`);
  const config = readRunConfig(run);
  const log = readMetricsLog(join(run, 'metrics.jsonl'));
  const epochs = log.filter((r) => r.kind === 'epoch' && r.complete === true).length;
  return resultRow(
    {
      run,
      model: config.model.name,
      image_size: config.model.image_size,
      epochs,
      batch_size: config.train.batch_size,
      settings: Object.fromEntries(
        (['model', 'train'] as const).flatMap((section) =>
          Object.entries(config[section]).map(([key, value]) => [`${section}.${key}`, JSON.stringify(value)]),
        ),
      ),
      grid_sampler: gridSampler(run, evaluation.model.step),
    },
    evaluation,
  );
});
for (const r of rows) console.log(JSON.stringify(r));

const dash = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : String(v));
const cols = [
  'model',
  'epochs',
  'PSNR dB',
  'SSIM',
  'MS-SSIM',
  '-ELBO',
  'default sampler',
  'Fréchet feat. dist.',
  'kernel dist.',
  'precision / recall',
  'sample-pair MS-SSIM',
  'TSTR / TRTR acc',
];
const lines: Record<string, string>[] = rows.map((r) => {
  const u = r.default_sampler ? r.utility[r.default_sampler] : null;
  return {
    model: r.model,
    epochs: String(r.epochs),
    'PSNR dB': dash(r.psnr_db),
    SSIM: dash(r.ssim),
    'MS-SSIM': dash(r.ms_ssim),
    '-ELBO': dash(r.nelbo),
    'default sampler': r.default_sampler ?? '—',
    'Fréchet feat. dist.': dash(r.default_frechet_feature_distance),
    'kernel dist.': dash(r.default_kernel_distance),
    'precision / recall': `${dash(r.default_precision)} / ${dash(r.default_recall)}`,
    'sample-pair MS-SSIM': dash(r.default_diversity_ms_ssim_samples),
    'TSTR / TRTR acc': u ? `${dash(u.accuracy.tstr.mean)} / ${dash(u.accuracy.trtr.mean)}` : '—',
  };
});
const first = rows[0];
if (first) {
  const majority = rows.map((r) => r.majority_accuracy).find((v) => v !== null);
  lines.push(
    { model: '*constant grey image*', 'PSNR dB': dash(first.psnr_grey_db) },
    {
      model: '*training-mean image*',
      'PSNR dB': dash(first.psnr_train_mean_db),
      SSIM: dash(first.ssim_train_mean),
      'MS-SSIM': dash(first.ms_ssim_train_mean),
    },
    {
      model: '*real vs real*',
      'Fréchet feat. dist.': dash(first.frechet_reference),
      'kernel dist.': dash(first.kernel_reference),
      'precision / recall': `${dash(first.precision_reference)} / ${dash(first.recall_reference)}`,
      'sample-pair MS-SSIM': dash(first.diversity_ms_ssim_real),
      'TSTR / TRTR acc': majority === undefined ? '' : `${majority} (majority class)`,
    },
  );
}
console.log(`\n| ${cols.join(' | ')} |\n|${cols.map(() => ' --- ').join('|')}|`);
for (const c of lines) console.log(`| ${cols.map((k) => c[k] ?? '').join(' | ')} |`);
