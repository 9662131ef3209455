// report.html: one self-contained file (inline CSS, data: URI images, inline SVG, no scripts, no
// network). Every piece of text from a run (names, config, metric notes) is escaped.
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { metricRows, formatNumber, type EvalFile } from '../eval/eval-file.ts';
import { escapeHtml } from '../util/escape-html.ts';
import { lossCurveSvg } from '../util/svg.ts';
import { restorationHtml } from '../restore/eval-hook.ts';
import type { EpochImage, RunSummary } from './run-summary.ts';

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grids, .curves, .side { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
img.grid { image-rendering: pixelated; border: 1px solid #ccc; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow: auto; max-height: 420px; }
.muted { color: #777; }
`;

function dataUri(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** Display width: the PNG's own width (IHDR) scaled by the largest whole factor that stays within 480 px, so pixels stay square and sharp. */
function displayWidth(png: Buffer): number {
  const natural = png.length >= 24 ? png.readUInt32BE(16) : 0;
  if (natural <= 0) return 480;
  return natural * Math.max(1, Math.floor(480 / natural));
}

function imageFigure(image: EpochImage | undefined, what: string): string {
  if (!image) return `<p class="muted">no ${escapeHtml(what)} yet</p>`;
  return `<figure><img class="grid" width="${displayWidth(image.png)}" alt="${escapeHtml(what)}, epoch ${image.epoch}" src="${dataUri(image.png)}"><figcaption>${escapeHtml(what)}, epoch ${image.epoch}</figcaption></figure>`;
}

const CLOSEST_PAIRS_FILE = /^eval-closest-pairs-[a-z]+\.png$/;

/** The closest sample / training pairs eval wrote beside eval.json, with their distances. */
function closestPairsFigures(evaluation: EvalFile, runDir: string): string {
  const fitted = evaluation.metrics.fitted_posterior;
  const sources = [
    { what: 'prior draws', privacy: evaluation.metrics.privacy },
    { what: 'fitted-latent draws', privacy: fitted?.privacy ?? null },
  ];
  const figures = sources.flatMap(({ what, privacy }) => {
    // Only a picture eval names that way, in the run directory itself: eval.json is not trusted to point elsewhere.
    if (!privacy?.grid || !CLOSEST_PAIRS_FILE.test(privacy.grid) || !existsSync(join(runDir, privacy.grid))) return [];
    const png = readFileSync(join(runDir, privacy.grid));
    const distances = privacy.closest_pairs.map((p) => formatNumber(p.pixel_distance)).join(', ');
    const caption = `${what}: the ${privacy.closest_pairs.length} samples closest to a training image (top) and that image (bottom); RMS pixel distances ${distances}; held-out 1st percentile ${formatNumber(privacy.pixel.heldout_p1)}`;
    return [
      `<figure><img class="grid" width="${displayWidth(png)}" alt="${escapeHtml(caption)}" src="${dataUri(png)}"><figcaption>${escapeHtml(caption)}</figcaption></figure>`,
    ];
  });
  return figures.length > 0 ? `<h4>Closest sample / training pairs</h4>\n<div class="grids">${figures.join('')}</div>` : '';
}

/** Which sampler `medvae sample` uses by default for this checkpoint, and why (eval files before it: none). */
function samplerLine(evaluation: EvalFile): string {
  const choice = evaluation.metrics.sampler;
  if (!choice) return '';
  const distances = Object.entries(choice.frechet_chosen_on)
    .map(([sampler, d]) => `${sampler} ${d === null ? 'n/a' : formatNumber(d)}`)
    .join(', ');
  const fallback = choice.fallback ? ` (${escapeHtml(choice.fallback)})` : '';
  return `<p>default sampler <b>${escapeHtml(choice.default)}</b>: the lowest Fréchet feature distance to the ${choice.n_chosen_on} images of split <b>${escapeHtml(choice.chosen_on)}</b>${fallback} (${escapeHtml(distances)})</p>`;
}

function evalTable(evaluation: EvalFile | undefined, runDir: string): string {
  if (!evaluation) return `<p class="muted">not evaluated yet: run <code>medvae eval --run ${escapeHtml(runDir)}</code></p>`;
  const rows = metricRows(evaluation.metrics)
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.section)}</td><td>${escapeHtml(r.metric)}</td><td class="num" data-metric="${escapeHtml(r.metric)}">${escapeHtml(r.value)}</td><td class="baseline">${escapeHtml(r.baseline)}</td><td>${escapeHtml(r.note)}</td></tr>`,
    )
    .join('\n');
  const fn = evaluation.metrics.sample_quality.feature_net;
  const temperature = evaluation.model.temperature === null ? '' : `, temperature ${formatNumber(evaluation.model.temperature)}`;
  return `<p>split <b>${escapeHtml(evaluation.split)}</b>, n = ${evaluation.n}, seed = ${evaluation.seed}, checkpoint step ${evaluation.model.step}${temperature}, ${escapeHtml(evaluation.meta.created_at)}</p>
${samplerLine(evaluation)}
<p class="muted">Baselines are scored on the same held-out images: <i>grey</i> predicts the constant mid-grey image, <i>train mean</i> the training set's mean image, <i>real vs real</i> compares real training with real held-out images.</p>
<table class="eval"><thead><tr><th>section</th><th>metric</th><th>value</th><th>baseline</th><th>note</th></tr></thead><tbody>
${rows}
</tbody></table>
<p class="muted">Sample distances are measured in the ${fn.dim}-d feature space of a small CNN (${escapeHtml(fn.task)} task, version ${fn.version}, seed ${fn.seed}) trained on ${fn.n_train} real training images of this dataset${fn.heldout_accuracy === null ? '' : ` (held-out accuracy ${formatNumber(fn.heldout_accuracy)})`}: a domain feature distance, not FID. Compare only runs sharing feature net <code>${escapeHtml(fn.id)}</code>.</p>
${closestPairsFigures(evaluation, runDir)}`;
}

function lossCurves(run: RunSummary): string {
  if (run.series.size === 0) return '<p class="muted">no metrics.jsonl step records</p>';
  return `<div class="curves">${[...run.series]
    .map(([name, points]) => {
      const means = run.epochMeans.get(name);
      const series = means?.length
        ? [
            { name: 'step', points },
            { name: 'epoch mean', points: means },
          ]
        : [{ name, points }];
      return `<figure class="curve">${lossCurveSvg(series, { title: name, xLabel: 'step', yLabel: name, width: 420, height: 260, logY: true })}</figure>`;
    })
    .join('\n')}</div>`;
}

function machineTable(run: RunSummary): string {
  const rows: [string, string][] = [];
  if (run.trainingBackend) rows.push(['training backend', run.trainingBackend]);
  const ev = run.evaluation;
  if (ev) {
    const m = ev.meta.machine;
    rows.push(
      ['eval backend', ev.meta.backend],
      ['eval machine', `${m.os}; ${m.cpus} x ${m.cpu_model}; ${m.memory_gb} GB; node ${m.node}`],
      ['eval time', `${formatNumber(ev.meta.seconds)} s`],
    );
  }
  const cpus = os.cpus();
  rows.push([
    'report machine',
    `${os.type()} ${os.release()} ${os.arch()}; ${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown'}; ${Math.round(os.totalmem() / 2 ** 30)} GB; node ${process.version}`,
  ]);
  return `<table class="machine"><tbody>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
}

function runSection(run: RunSummary): string {
  return `<section class="run" id="run-${escapeHtml(run.name)}">
<h2>${escapeHtml(run.name)}</h2>
<p>model <b>${escapeHtml(run.model)}</b> on <b>${escapeHtml(run.dataset)}</b> (${escapeHtml(run.dir)})</p>
<h3>Samples and reconstructions</h3>
<div class="grids">${imageFigure(run.samples, 'samples')}${imageFigure(run.reconstructions, 'reconstructions (originals above)')}</div>
<p class="muted">to explore this model in any browser (new samples, interpolation, an anomaly score and fill-in for dropped-in images; a folder that works offline and can be shared): <code>medvae export-web --run ${escapeHtml(run.dir)} --out SITE/</code></p>
<h3>Loss curves</h3>
${lossCurves(run)}
<h3>Evaluation</h3>
${evalTable(run.evaluation, run.dir)}
${restorationHtml(run.dir)}
<h3>Machine</h3>
${machineTable(run)}
<h3>Resolved config</h3>
<pre class="config">${escapeHtml(run.configText)}</pre>
</section>`;
}

/** Side by side: one column per run, the eval metrics as rows, the sample grids underneath. */
function comparison(runs: RunSummary[]): string {
  const metricNames: string[] = [];
  const rowsByRun = runs.map(
    (r) => new Map((r.evaluation ? metricRows(r.evaluation.metrics) : []).map((row) => [`${row.section}: ${row.metric}`, row])),
  );
  for (const v of rowsByRun) for (const k of v.keys()) if (!metricNames.includes(k)) metricNames.push(k);
  // Runs scored on the same held-out images share their baselines; differing ones are all listed.
  const baselines = (k: string): string => [...new Set(rowsByRun.map((v) => v.get(k)?.baseline ?? '').filter((b) => b !== ''))].join(' | ');
  const head = `<tr><th>metric</th><th>baseline</th>${runs.map((r) => `<th>${escapeHtml(r.name)}<br><span class="muted">${escapeHtml(r.model)}</span></th>`).join('')}</tr>`;
  const body = metricNames
    .map(
      (k) =>
        `<tr><td>${escapeHtml(k)}</td><td class="baseline">${escapeHtml(baselines(k))}</td>${rowsByRun.map((v) => `<td class="num">${escapeHtml(v.get(k)?.value ?? 'n/a')}</td>`).join('')}</tr>`,
    )
    .join('\n');
  const lastLoss = (r: RunSummary): string => {
    const pts = r.series.get('loss');
    return pts && pts.length ? formatNumber(pts[pts.length - 1][1]) : 'n/a';
  };
  const finalRow = `<tr><td>training: last loss</td><td></td>${runs.map((r) => `<td class="num">${escapeHtml(lastLoss(r))}</td>`).join('')}</tr>`;
  const curves = runs.filter((r) => r.series.has('loss')).map((r) => ({ name: r.name, points: r.series.get('loss') ?? [] }));
  return `<section class="compare"><h2>Comparison</h2>
<table class="compare"><thead>${head}</thead><tbody>${body}\n${finalRow}</tbody></table>
${curves.length > 1 ? lossCurveSvg(curves, { title: 'loss', xLabel: 'step', yLabel: 'loss', width: 640, height: 320, logY: true }) : ''}
<div class="side">${runs.map((r) => `<div><h3>${escapeHtml(r.name)}</h3>${imageFigure(r.samples, 'samples')}</div>`).join('')}</div>
</section>`;
}

export function reportHtml(runs: RunSummary[], generatedAt: Date): string {
  if (runs.length === 0) throw new RangeError('reportHtml needs at least one run');
  const title = runs.length === 1 ? `medvae report: ${runs[0].name}` : `medvae report: ${runs.map((r) => r.name).join(' vs ')}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="muted">generated ${escapeHtml(generatedAt.toISOString())}</p>
${runs.length > 1 ? comparison(runs) : ''}
${runs.map(runSection).join('\n')}
</body></html>
`;
}
