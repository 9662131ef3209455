// The restoration tasks inside `medvae eval --tasks impute,denoise,score` and `medvae report`: eval.json
// gains a `restoration` key (RestorationMetrics), grids land in the run directory, and the report
// shows a table per task, the grids and the score histograms. Kept here so src/eval and src/report need one line each.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeHtml } from '../util/escape-html.ts';
import { loadRun } from '../run/checkpoint.ts';
import { formatNumber } from '../eval/eval-file.ts';
import { histogramSvg } from './histogram.ts';
import { restorationMetrics, type RestorationMetrics, type RestoreTask } from './restore-eval.ts';

export async function evalRestoration(
  runDir: string,
  opts: {
    tasks: readonly RestoreTask[];
    split: string;
    n: number;
    seed: number;
    normal?: number[];
    /** Which checkpoint (loadRun's names); default: the newest intact one. */
    checkpoint?: string;
    log?: (line: string) => void;
  },
): Promise<RestorationMetrics> {
  const { checkpoint, ...rest } = opts;
  const loaded = await loadRun(runDir, { checkpoint, log: opts.log });
  const { config, model } = loaded;
  try {
    return await restorationMetrics(model, config, { ...rest, gridDir: loaded.runDir });
  } finally {
    model.dispose();
  }
}

/** Rows of (task, what, model, baselines) for the terminal and the report. */
export function restorationRows(r: RestorationMetrics): string[][] {
  const rows: string[][] = [];
  const im = r.imputation;
  if (im) {
    const base = `mean fill ${formatNumber(im.baselines.mean_fill.psnr)}, harmonic ${formatNumber(im.baselines.harmonic.psnr)}`;
    for (const [method, m] of Object.entries(im.methods)) {
      rows.push([
        `impute ${im.mask}`,
        `${method} PSNR (missing px)`,
        formatNumber(m.psnr),
        base,
        m.acceptance === null ? '' : `acceptance ${formatNumber(m.acceptance)}`,
      ]);
      rows.push([
        `impute ${im.mask}`,
        `${method} SSIM (missing px)`,
        formatNumber(m.ssim),
        `mean fill ${formatNumber(im.baselines.mean_fill.ssim)}, harmonic ${formatNumber(im.baselines.harmonic.ssim)}`,
        '',
      ]);
    }
  }
  for (const d of r.denoising ?? []) {
    rows.push([
      `denoise ${d.noise}`,
      'model PSNR',
      formatNumber(d.model.psnr),
      `noisy ${formatNumber(d.noisy.psnr)}, blur ${formatNumber(d.gaussian_blur.psnr)} (sigma ${d.gaussian_blur.sigma}), median ${formatNumber(d.median.psnr)} (${d.median.window}x${d.median.window})`,
      'filters tuned on the validation split',
    ]);
    rows.push([
      `denoise ${d.noise}`,
      'model SSIM',
      formatNumber(d.model.ssim),
      `noisy ${formatNumber(d.noisy.ssim)}, blur ${formatNumber(d.gaussian_blur.ssim)}, median ${formatNumber(d.median.ssim)}`,
      '',
    ]);
  }
  const sc = r.scores;
  if (sc) {
    for (const [k, mean] of Object.entries(sc.mean)) {
      const auroc = sc.auroc?.[k];
      rows.push([
        `score (K=${sc.samples})`,
        `${k} mean`,
        formatNumber(mean),
        auroc === undefined ? '' : `AUROC normal ${sc.normal?.join(',')} vs rest ${formatNumber(auroc)}`,
        auroc === undefined ? 'eval --normal CLASSES gives the AUROC' : 'chance 0.5',
      ]);
    }
  }
  return rows;
}

export function formatRestorationTable(r: RestorationMetrics): string {
  return restorationRows(r)
    .map((row) => row.join('  '))
    .join('\n');
}

/** The restoration part of a run's eval.json, if it has one. */
export function readRestoration(runDir: string): RestorationMetrics | undefined {
  const path = join(runDir, 'eval.json');
  if (!existsSync(path)) return undefined;
  const doc = JSON.parse(readFileSync(path, 'utf8')) as { restoration?: RestorationMetrics };
  return doc.restoration;
}

/** The report's restoration section ('' when the run was evaluated without --tasks). */
export function restorationHtml(runDir: string): string {
  const r = readRestoration(runDir);
  if (!r) return '';
  const rows = restorationRows(r)
    .map((row) => `<tr>${row.map((c, i) => `<td${i === 2 ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  const grids = Object.entries(r.grids)
    .filter(([, file]) => existsSync(join(runDir, file)))
    .map(
      ([caption, file]) =>
        `<figure><img class="grid" alt="${escapeHtml(caption)}" src="data:image/png;base64,${readFileSync(join(runDir, file)).toString('base64')}"><figcaption>${escapeHtml(caption)}</figcaption></figure>`,
    )
    .join('');
  const histograms = r.scores
    ? Object.entries(r.scores.histograms)
        .map(([k, h]) => histogramSvg(h, k))
        .join('')
    : '';
  return `<h3>Restoration (split ${escapeHtml(r.split)}, seed ${r.seed})</h3>
<table class="eval"><thead><tr><th>task</th><th>metric</th><th>value</th><th>baselines</th><th>note</th></tr></thead><tbody>
${rows}
</tbody></table>
<div class="grids">${grids}</div>
<div class="curves">${histograms}</div>`;
}
