// Prints, for each run directory given, one JSON line with its evaluation numbers, epochs, steps and
// the machine, then a Markdown table of the same numbers (the README's results section).
import { readEvalFile } from '../src/eval/eval-file.ts';
import { readRunConfig } from '../src/train/checkpoint.ts';
import { readMetricsLog } from '../src/train/metrics-log.ts';
import { join } from 'node:path';

const round = (v: number | null | undefined, digits = 4): number | null => (v === null || v === undefined ? null : Number(v.toPrecision(digits)));
const rows = process.argv.slice(2).map((run) => {
  const evaluation = readEvalFile(run);
  if (!evaluation) throw new Error(`${run}: no eval.json; run medvae eval --run ${run} first`);
  const config = readRunConfig(run);
  const log = readMetricsLog(join(run, 'metrics.jsonl'));
  const epochs = log.filter((r) => r.kind === 'epoch' && r.complete === true).length;
  const m = evaluation.metrics;
  return {
    run, model: config.model.name, image_size: config.model.image_size, epochs, steps: evaluation.model.step,
    psnr_db: round(m.reconstruction.psnr), ssim: round(m.reconstruction.ssim), ms_ssim: round(m.reconstruction.ms_ssim),
    nelbo: round(m.reconstruction.nelbo), frechet_feature_distance: round(m.sample_quality.frechet_distance),
    frechet_reference: round(m.sample_quality.reference_frechet_distance), kernel_distance: round(m.sample_quality.kernel_distance.mean),
    diversity_ms_ssim_samples: round(m.diversity.ms_ssim_generated), diversity_ms_ssim_real: round(m.diversity.ms_ssim_real),
    tstr_accuracy: round(m.tstr?.tstr.accuracy), tstr_auc: round(m.tstr?.tstr.auc), trtr_accuracy: round(m.tstr?.trtr.accuracy), trtr_auc: round(m.tstr?.trtr.auc),
    backend: evaluation.meta.backend, machine: evaluation.meta.machine,
  };
});
for (const r of rows) console.log(JSON.stringify(r));
const cols: [string, (r: (typeof rows)[number]) => unknown][] = [
  ['model', (r) => r.model], ['epochs', (r) => r.epochs], ['PSNR dB', (r) => r.psnr_db], ['SSIM', (r) => r.ssim], ['MS-SSIM', (r) => r.ms_ssim],
  ['-ELBO', (r) => r.nelbo], ['Fréchet feat. dist. (ref.)', (r) => `${r.frechet_feature_distance} (${r.frechet_reference})`],
  ['kernel dist.', (r) => r.kernel_distance], ['sample-pair MS-SSIM (real)', (r) => `${r.diversity_ms_ssim_samples} (${r.diversity_ms_ssim_real})`],
  ['TSTR acc / AUC', (r) => (r.tstr_accuracy === null ? '—' : `${r.tstr_accuracy} / ${r.tstr_auc}`)],
  ['TRTR acc / AUC', (r) => (r.trtr_accuracy === null ? '—' : `${r.trtr_accuracy} / ${r.trtr_auc}`)],
];
console.log(`\n| ${cols.map(([h]) => h).join(' | ')} |\n|${cols.map(() => ' --- ').join('|')}|`);
for (const r of rows) console.log(`| ${cols.map(([, f]) => String(f(r))).join(' | ')} |`);
