// report.html in a real browser: headless Chromium opens it from disk, every image decodes, the
// tables hold eval.json's numbers, nothing is fetched, nothing logs an error, hostile text stays
// text. A screenshot is kept in test-artifacts/report.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { chromium, type Browser } from 'playwright-core';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import { EVAL_FILE_VERSION, formatNumber, metricRows, type EvalFile } from '../../src/eval/eval-file.ts';
import type { EvalMetrics } from '../../src/eval/evaluate.ts';
import type { DistanceComparison } from '../../src/eval/privacy.ts';
import type { Spread } from '../../src/eval/stats.ts';
import { writeReport } from '../../src/report/write-report.ts';
import { lossCurveSvg } from '../../src/util/svg.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');
const dir = mkdtempSync(join(tmpdir(), 'medvae-report-'));
const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

const distances = (scale: number): DistanceComparison => ({
  sample_median: 0.3 * scale,
  heldout_median: 0.31,
  sample_min: 0.05,
  heldout_p1: 0.12,
  heldout_p5: 0.15,
  heldout_p99: 0.6,
  share_below_heldout_p1: 0.0125 * scale,
  share_below_heldout_p5: 0.05,
  share_above_heldout_p99: 0.02,
});

const spreadOf = (values: number[]): Spread => ({ mean: values[0], std: 0.01, values });

function metrics(scale: number, tstr: boolean): EvalMetrics {
  return {
    reconstruction: {
      n: 400,
      mse: 0.0123456 * scale,
      psnr: 25.123456 / scale,
      ssim: 0.81234,
      ms_ssim: 0.91234,
      nelbo: -1234.5678 * scale,
      recon_nll: -1300.1,
      kl: 65.5322,
      decoder_sigma: 0.111,
      baselines: {
        constant_grey: { mse: 0.4567, psnr: 9.4123, ssim: 0.0123, ms_ssim: 0.0456 },
        train_mean: { mse: 0.0543, psnr: 18.7123, ssim: 0.4321, ms_ssim: 0.6543 },
      },
    },
    sample_quality: {
      n_real: 400,
      n_generated: 400,
      feature_net: {
        id: 'featnet-v1-0123456789abcdef',
        version: 1,
        seed: 0,
        task: 'class',
        dim: 64,
        recipe: { steps: 300, batchSize: 64, lr: 0.002 },
        n_train: 1080,
        heldout_accuracy: 0.5,
      },
      frechet_distance: 12.3456 * scale,
      reference_frechet_distance: 1.5,
      kernel_distance: { mean: 0.0456 * scale, std_error: 0.00123, subsets: 10, subset_size: 100 },
      reference_kernel_distance: { mean: 0.00042, std_error: 0.0001, subsets: 10, subset_size: 100 },
      precision_recall: { k: 3, precision: 0.7 / scale, recall: 0.6 },
      reference_precision_recall: { k: 3, precision: 0.78, recall: 0.77 },
    },
    diversity: { pairs: 100, ms_ssim_generated: 0.2345 * scale, ms_ssim_real: 0.1987 },
    tstr: tstr
      ? {
          label_kind: 'class',
          n_train: 400,
          n_test: 400,
          tstr: { accuracy: 0.4321, auc: 0.6789 },
          trtr: { accuracy: 0.5432, auc: 0.7654 },
          majority_accuracy: 0.435,
          conditioning: { accuracy: 0.61, auc: 0.81 },
          augmentation: {
            n_real: 1080,
            n_synthetic: 400,
            real_only: { accuracy: 0.55, auc: 0.77 },
            real_plus_synthetic: { accuracy: 0.56, auc: 0.78 },
          },
          over_seeds: {
            seeds: [0, 1],
            accuracy: {
              tstr: spreadOf([0.4321, 0.44]),
              trtr: spreadOf([0.5432, 0.55]),
              real_only: spreadOf([0.55, 0.54]),
              real_plus_synthetic: spreadOf([0.56, 0.57]),
              tstr_minus_trtr: { mean: -0.11, low: -0.2, high: -0.02, level: 0.95 },
              synthetic_gain: { mean: 0.02, low: -0.01, high: 0.05, level: 0.95 },
            },
            auc: null,
          },
        }
      : null,
    privacy: {
      n_samples: 400,
      n_heldout: 400,
      n_train: 1080,
      feature: distances(scale),
      pixel: distances(scale),
      share_closer_to_train: { feature: 0.5, pixel: 0.52 },
      closest_pairs: [{ sample: 3, train: 17, pixel_distance: 0.05 }],
      grid: scale === 1 ? 'eval-closest-pairs-prior.png' : null,
    },
    membership: {
      n_train: 400,
      n_heldout: 400,
      decoder_sigma: 0.1,
      chance_halfwidth_95: 0.04,
      neg_elbo: { auroc: 0.5 + 0.01 * scale, train_mean: -100, heldout_mean: -99 },
      recon_mse: { auroc: 0.51, train_mean: 0.01, heldout_mean: 0.011 },
    },
    fitted_posterior: null,
  };
}

async function gridPng(seed: number): Promise<Buffer> {
  const side = 64;
  const raw = Buffer.alloc(side * side * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (seed + 3) + (i >> 7) * 17) & 0xff;
  return sharp(raw, { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
}

async function fakeRun(name: string, model: string, scale: number, tstr: boolean): Promise<string> {
  const run = join(dir, 'runs', name);
  mkdirSync(join(run, 'samples'), { recursive: true });
  mkdirSync(join(run, 'reconstructions'), { recursive: true });
  const config = {
    ...DEFAULT_CONFIG,
    model: { ...DEFAULT_CONFIG.model, name: model },
    output: { ...DEFAULT_CONFIG.output, name: HOSTILE },
  };
  writeFileSync(join(run, 'config.yaml'), stringify(config));
  const lines: string[] = [JSON.stringify({ kind: 'start', step: 0, epoch: 0, backend: 'wasm', world_size: 1 })];
  for (let step = 1; step <= 30; step++) {
    const loss = (scale * 2) / Math.sqrt(step);
    lines.push(
      JSON.stringify({
        kind: 'step',
        step,
        epoch: Math.floor(step / 10),
        terms: { loss, reconstruction: loss * 0.8, kld: loss * 0.2 },
        lr: 0.005,
        images_per_s: 100,
      }),
    );
  }
  for (const epoch of [0, 1, 2])
    lines.push(
      JSON.stringify({ kind: 'epoch', step: 10 * (epoch + 1), epoch, means: { loss: scale / (epoch + 1), reconstruction: 0.8, kld: 0.2 } }),
    );
  writeFileSync(join(run, 'metrics.jsonl'), `${lines.join('\n')}\n`);
  // epoch-0002 is the latest; epoch-0001 must not be the one shown.
  writeFileSync(join(run, 'samples', 'epoch-0001.png'), Buffer.from('not a png'));
  writeFileSync(join(run, 'samples', 'epoch-0002.png'), await gridPng(scale));
  writeFileSync(join(run, 'reconstructions', 'epoch-0002.png'), await gridPng(scale + 1));
  writeFileSync(join(run, 'eval-closest-pairs-prior.png'), await gridPng(scale + 2));
  const file: EvalFile = {
    format: 'medvae-eval',
    version: EVAL_FILE_VERSION,
    run: name,
    split: 'test',
    n: 400,
    seed: 0,
    heldout_indices: Array.from({ length: 400 }, (_, i) => i),
    model: { name: model, image_size: 64, channels: 3, param_count: 1000, step: 30, temperature: null },
    metrics: metrics(scale, tstr),
    meta: {
      created_at: '2026-01-01T00:00:00.000Z',
      seconds: 12.5,
      backend: 'wasm',
      machine: { os: 'Linux', cpus: 2, cpu_model: 'test cpu', memory_gb: 8, node: 'v20' },
    },
  };
  writeFileSync(join(run, 'eval.json'), JSON.stringify(file));
  return run;
}

let browser: Browser | undefined;
let vanilla = '';
let mssim = '';
let gan = '';

before(async () => {
  vanilla = await fakeRun('vanilla', 'vae', 1, false);
  mssim = await fakeRun('mssim', 'mssim_vae', 2, false);
  gan = await fakeRun('vaegan', 'cvae', 3, true);
  if (hasChromium) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }
});

after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('lossCurveSvg escapes names and skips non-finite points', () => {
  const svg = lossCurveSvg(
    [
      {
        name: 'a<b',
        points: [
          [0, 1],
          [1, NaN],
          [2, 0.5],
        ],
      },
      { name: 'c&d', points: [[0, 2]] },
    ],
    { title: 't"x' },
  );
  assert.match(svg, /a&lt;b/);
  assert.match(svg, /c&amp;d/);
  assert.match(svg, /t&quot;x/);
  assert.doesNotMatch(svg, /NaN/);
  // Two finite points of the first series: one path with M and one L.
  assert.match(svg, /<path d="M[\d.]+ [\d.]+ L[\d.]+ [\d.]+"/);
});

test('a run without eval.json or grids still reports, to --out, saying what is missing', () => {
  const bare = join(dir, 'runs', 'bare');
  mkdirSync(bare, { recursive: true });
  writeFileSync(join(bare, 'config.yaml'), stringify(DEFAULT_CONFIG));
  const out = join(dir, 'elsewhere', 'r.html');
  assert.equal(writeReport(bare, { out }), out);
  const html = readFileSync(out, 'utf8');
  assert.match(html, /not evaluated yet: run <code>medvae eval --run /);
  assert.match(html, /no samples yet/);
  assert.match(html, /no metrics.jsonl step records/);
  assert.throws(() => writeReport(join(dir, 'runs', 'missing')), /missing does not exist; give a run directory/);
});

test(
  hasChromium
    ? 'report opens in Chromium: images decode, tables hold eval.json numbers, no network, no errors'
    : 'report in Chromium (SKIPPED: /usr/bin/chromium not installed)',
  { skip: !hasChromium },
  async () => {
    const out = writeReport(vanilla, { compare: [mssim, gan] });
    assert.equal(out, join(vanilla, 'report.html'));
    const html = readFileSync(out, 'utf8');
    assert.ok(!html.includes(HOSTILE), 'hostile config text is escaped');
    assert.ok(!/(src|href)="https?:/.test(html), 'no remote URLs');

    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(out).href, { waitUntil: 'load' });

    const images = await page.$$eval('img', (imgs) =>
      imgs.map((i) => ({ alt: i.alt, complete: i.complete, width: i.naturalWidth, src: i.src.slice(0, 22) })),
    );
    // Per run: samples + reconstructions (3 runs), the first run's closest pairs (the only one its eval.json names), the side-by-side samples (3).
    assert.equal(images.length, 10);
    assert.match(images.find((i) => i.alt.startsWith('prior draws'))?.alt ?? '', /closest to a training image/);
    for (const img of images) {
      assert.ok(img.complete && img.width === 64, `${img.alt}: naturalWidth ${img.width}`);
      assert.equal(img.src, 'data:image/png;base64,');
    }
    assert.equal(await page.$$eval('svg', (s) => s.length), 3 * 3 + 1, 'three loss terms per run plus the comparison plot');
    // Each term's plot overlays the epoch means on the steps.
    assert.equal(await page.$$eval('#run-vanilla figure.curve svg path', (p) => p.length), 3 * 2);

    // The first run's eval table holds its eval.json numbers, formatted as the terminal table.
    const evalFile = JSON.parse(readFileSync(join(vanilla, 'eval.json'), 'utf8')) as EvalFile;
    const shown = await page.$$eval('#run-vanilla table.eval tbody tr', (rows) =>
      rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent ?? '')),
    );
    const expected = metricRows(evalFile.metrics).map((r) => [r.section, r.metric, r.value, r.baseline, r.note]);
    assert.deepEqual(shown, expected);
    assert.ok(
      shown.some((row) => row[2] === formatNumber(0.0123456)),
      'MSE 0.0123456 is shown',
    );
    // Baselines sit next to the numbers they qualify.
    const psnrShown = shown.find((row) => row[1] === 'PSNR (dB)');
    assert.equal(psnrShown?.[3], `grey ${formatNumber(9.4123)}, train mean ${formatNumber(18.7123)}`);
    assert.equal(shown.find((row) => row[1] === 'Frechet feature distance')?.[3], `real vs real ${formatNumber(1.5)}`);

    // The comparison table: one column per run after the shared baselines, TSTR only where evaluated.
    const compare = await page.$$eval('table.compare tr', (rows) =>
      rows.map((r) => Array.from(r.querySelectorAll('th,td'), (c) => c.textContent ?? '')),
    );
    assert.deepEqual(compare[0].slice(1), ['baseline', 'vanillavae', 'mssimmssim_vae', 'vaegancvae']);
    const psnrRow = compare.find((r) => r[0] === 'reconstruction: PSNR (dB)');
    assert.deepEqual(psnrRow?.slice(1), [
      `grey ${formatNumber(9.4123)}, train mean ${formatNumber(18.7123)}`,
      formatNumber(25.123456),
      formatNumber(25.123456 / 2),
      formatNumber(25.123456 / 3),
    ]);
    const tstrRow = compare.find((r) => r[0] === 'TSTR: AUC (synthetic -> real)');
    assert.deepEqual(tstrRow?.slice(2), ['n/a', 'n/a', formatNumber(0.6789)]);
    const plusRow = compare.find((r) => r[0] === 'TSTR: accuracy (real + synthetic -> real)');
    assert.deepEqual(plusRow?.slice(1), [`real alone ${formatNumber(0.55)}`, 'n/a', 'n/a', formatNumber(0.56)]);
    const gainRow = compare.find((r) => r[0] === 'TSTR: accuracy over seeds (real + synthetic -> real)');
    assert.deepEqual(gainRow?.slice(1), [`real alone ${formatNumber(0.55)} ± 0.01`, 'n/a', 'n/a', `${formatNumber(0.56)} ± 0.01`]);
    const membershipRow = compare.find((r) => r[0] === 'membership: AUROC by -ELBO');
    assert.deepEqual(membershipRow?.slice(1), ['chance 0.5 ± 0.04', '0.51', '0.52', '0.53']);

    // Hostile config text is shown as text, not run.
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    const configText = await page.$eval('#run-vanilla pre.config', (p) => p.textContent ?? '');
    assert.ok(configText.includes(HOSTILE));
    assert.match(await page.$eval('#run-vanilla table.machine', (t) => t.textContent ?? ''), /training backend\s*wasm/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
    await page.close();
    assert.deepEqual(errors, []);
    const remote = requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'));
    assert.deepEqual(remote, []);
  },
);
