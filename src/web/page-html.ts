// index.html of an exported site: the text, the model card and the controls, written in full at
// export time so the page reads before its script has started; explorer.js (page/main.ts) fills
// in the pictures. Every string from the run goes through escapeHtml.
import { escapeHtml } from '../util/escape-html.ts';
import { MODEL_DATA_GLOBAL, SAMPLER_WORDS, SITE_FILES, quantileOf, samplerLine, type SiteData } from './site-data.ts';

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 20px 40px; color: #1a1a1a; }
h1 { font-size: 1.6em; margin: 18px 0 4px; } h2 { margin-top: 34px; border-bottom: 1px solid #ccc; }
.synthetic-note { background: #fdecea; border-left: 6px solid #b00020; padding: 8px 12px; }
.privacy-note { background: #e8f5e9; border-left: 6px solid #1b5e20; padding: 8px 12px; }
#backend { font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.pictures, #grid, #strip { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; text-align: center; font-size: 12px; max-width: 130px; }
canvas.picture { display: block; image-rendering: pixelated; border: 1px solid #888; }
#grid figure { cursor: pointer; }
.controls { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; margin: 8px 0; }
.drop { border: 2px dashed #888; border-radius: 6px; padding: 12px; min-width: 200px; }
.drop.over { background: #eef; }
.status { color: #555; font-style: italic; } [data-state=error] .status { color: #b00020; font-style: normal; font-weight: 600; }
.number { font-size: 1.3em; font-weight: 700; }
#mask { cursor: crosshair; image-rendering: pixelated; border: 1px solid #888; touch-action: none; }
.help { color: #444; max-width: 800px; }
`;

function classOptions(site: SiteData, all: string): string {
  if (site.labelWidth === 0) return '';
  const names = Array.from({ length: site.labelWidth }, (_, k) => site.classNames[k] ?? `class ${k}`);
  return [
    `<option value="">${escapeHtml(all)}</option>`,
    ...names.map((name, k) => `<option value="${k}">${escapeHtml(name)}</option>`),
  ].join('');
}

function classPicker(site: SiteData, id: string, label: string, all: string): string {
  if (site.labelWidth === 0) return `<select id="${id}" hidden><option value=""></option></select>`;
  return `<label>${escapeHtml(label)} <select id="${id}">${classOptions(site, all)}</select></label>`;
}

/** The sampler picker, the default (`medvae sample`'s) selected; a model without a fitted density has only the prior. */
function samplerPicker(site: SiteData): string {
  const { sampler, samplers } = site.sampling;
  const options = samplers.map(
    (s) =>
      `<option value="${s}"${s === sampler ? ' selected' : ''}>${escapeHtml(SAMPLER_WORDS[s].option)}${s === sampler ? ' (default)' : ''}</option>`,
  );
  return `<label>Codes from <select id="sampler"${samplers.length < 2 ? ' disabled' : ''}>${options.join('')}</select></label>`;
}

function cardTable(site: SiteData): string {
  const { card, model } = site;
  const rows: [string, string][] = [
    ['Model', `${model.name} (${card.parameters.toLocaleString('en')} parameters, latent size ${model.latent_dim})`],
    ['Trained on', `${card.dataset}: ${card.trainingImages.toLocaleString('en')} images`],
    ['Image size the model works at', `${model.image_size} × ${model.image_size}, ${model.in_channels === 1 ? 'grey' : 'colour'}`],
    ['Training', `${card.trainingSteps.toLocaleString('en')} optimizer steps`],
    ['Weights', `${card.run}, checkpoint ${card.checkpoint}`],
    ['Exported', card.exportedAt],
  ];
  if (site.labelWidth > 0)
    rows.push(['Classes', Array.from({ length: site.labelWidth }, (_, k) => site.classNames[k] ?? `class ${k}`).join(', ')]);
  return `<table class="card">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`;
}

function evaluationTable(site: SiteData): string {
  const evaluation = site.card.evaluation;
  if (!evaluation) {
    return '<p>This model has not been evaluated yet: no quality or privacy numbers to show. (Whoever trained it can run <code>medvae eval</code> and export again.)</p>';
  }
  const body = evaluation.rows
    .map((r) => `<tr><td>${[r.section, r.metric, r.value, r.baseline, r.note].map(escapeHtml).join('</td><td>')}</td></tr>`)
    .join('');
  return (
    `<p>Measured by <code>medvae eval</code> on ${evaluation.n} images of the ${escapeHtml(evaluation.split)} split, which the model did not train on. ` +
    'Each number has a baseline beside it: what a trivial method, or real images themselves, score on the same images.</p>' +
    `<table class="eval"><thead><tr><th>what</th><th>measure</th><th>this model</th><th>baseline</th><th>how to read it</th></tr></thead><tbody>${body}</tbody></table>`
  );
}

export function pageHtml(site: SiteData): string {
  const title = `Explore the model ${site.card.run}`;
  const ref = site.reference.negElbo;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' file: 'unsafe-eval' 'wasm-unsafe-eval' blob:; style-src 'unsafe-inline'; img-src 'self' data: blob:; worker-src blob:; connect-src blob: data:">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="synthetic-note"><strong>Pictures marked SYNTHETIC (red band) were made up by the model.</strong> They are not images of any patient and must not be used as such.</p>
<p class="privacy-note">Everything on this page runs inside your browser. Images you open here are never uploaded: the page makes no network request.</p>
<p id="backend">Starting the model…</p>

<h2>About this model</h2>
${cardTable(site)}
<h3>How good is it?</h3>
${evaluationTable(site)}

<section id="samples" data-state="working">
<h2>Samples: what the model makes up</h2>
<p class="help">Each picture is a new synthetic image drawn by the model. <em>Temperature</em> below 1 gives more typical, blander images; above 1 more varied and less realistic ones. Click a picture to use it as an end of the interpolation further down.</p>
<p id="sampler-line" class="help">${escapeHtml(samplerLine(site.sampling, site.sampling.sampler))}</p>
<div class="controls">
<button id="redraw">Draw new samples</button>
<label>Temperature <input id="temperature" type="range" min="0.1" max="1.5" step="0.05" value="1"> <span id="temperature-value">1.00</span></label>
${samplerPicker(site)}
${classPicker(site, 'sample-class', 'Class', 'all classes in turn')}
<span class="status"></span>
</div>
<div id="grid"></div>
<p id="seed-line" class="help"></p>
</section>

<section id="interpolation" data-state="done">
<h2>Between two images</h2>
<p class="help">The model turns each image into a short code and back. Walking in a straight line from one image's code to the other's shows what the model considers in between. Click two samples above, or drop two images of your own on the boxes.</p>
<div class="controls">
<div id="end-a" class="drop"><strong>Start</strong> <input type="file" accept="image/png,image/jpeg"><div class="picture-slot"></div></div>
<div id="end-b" class="drop"><strong>End</strong> <input type="file" accept="image/png,image/jpeg"><div class="picture-slot"></div></div>
<button id="interpolate">Show the images in between</button>
<span class="status"></span>
</div>
<div id="strip"></div>
</section>

<section id="your-image" class="drop" data-state="done">
<h2>Your image: how well does the model explain it?</h2>
<p class="help">Drop a PNG or JPEG here, or choose one. It is cropped to a square and resized to ${site.model.image_size} × ${site.model.image_size} as the training images were. The model reconstructs it, and scores how unusual it is compared with the images it was trained on.</p>
<div class="controls"><input id="image-file" type="file" accept="image/png,image/jpeg"> <span id="image-name"></span>
${classPicker(site, 'image-class', 'Score it as class', 'no class chosen (first class)')}
<span class="status"></span></div>
<div id="analysis-pictures" class="pictures"></div>
<table id="score">
<tr><th>Unusualness score (−ELBO, nats)</th><td><span id="score-value" class="number">–</span> <span id="score-class"></span></td><td id="score-baseline">training images: median ${quantileOf(ref, 0.5).toFixed(1)}, 95% of them below ${quantileOf(ref, 0.95).toFixed(1)}</td></tr>
<tr><th>Training images less unusual than this one</th><td><span id="score-percentile" class="number">–</span></td><td>50% = as typical as a training image; 99% = more unusual than almost all of them</td></tr>
<tr><th>Reconstruction error (mean squared, pixel range −1…1)</th><td><span id="mse-value" class="number">–</span></td><td id="mse-baseline"></td></tr>
</table>
<p class="help">The score is the model's evidence bound (−ELBO) under a Gaussian pixel model with spread ${site.decoderSigma.toPrecision(3)} (fitted on ${escapeHtml(site.sigmaFittedOn)}); the percentile compares it with ${site.reference.negElbo.length} images of ${escapeHtml(site.reference.description)}, scored the same way when this page was exported. A high score means the image is unlike the training data (another kind of scan, an artefact, or an abnormality the model never saw), not that it is a diagnosis.</p>
</section>

<section id="imputation" data-state="done" hidden>
<h2>Paint over part of your image and let the model fill it in</h2>
<p class="help">Paint with the mouse over the region to replace, then press <em>Fill in</em>. The model proposes what could be there given the rest of the image (Metropolis-within-Gibbs, ${site.imputation.iterations} steps × ${site.imputation.chains} chains, averaged; the command line's <code>medvae impute</code> runs ${site.imputation.cliIterations} steps). Beside it, the baseline: a smooth fill from the edges of the painted region.</p>
<div class="controls">
<canvas id="mask"></canvas>
<div><label>Brush <input id="brush" type="range" min="1" max="${Math.max(2, Math.round(site.model.image_size / 3))}" value="${Math.max(1, Math.round(site.model.image_size / 6))}"></label><br>
<button id="clear-mask">Clear the painting</button> <button id="impute">Fill in</button><br>
<span class="status"></span></div>
</div>
<div id="imputed" class="pictures"></div>
<p class="help">Proposals accepted: <span id="acceptance">–</span>%.</p>
</section>

<h2>How this page works</h2>
<p class="help">This folder was written by <code>medvae export-web</code>. It holds the model's weights (<code>encoder/</code>, <code>decoder/</code> in TensorFlow.js format, and the same in <code>${SITE_FILES.modelData}</code>), the numbers above (<code>${SITE_FILES.metadata}</code>) and this page with its script (<code>${SITE_FILES.script}</code>). It works opened straight from the disk or from any web server, without an internet connection.</p>
<script src="${SITE_FILES.modelData}"></script>
<script src="${SITE_FILES.script}"></script>
</body>
</html>
`;
}

/** model-data.js: the site record and weights, as a classic script assigning one global (file:// pages can load scripts, not fetch files). */
export function modelDataScript(json: string): string {
  return `window.${MODEL_DATA_GLOBAL} = ${json};\n`;
}
