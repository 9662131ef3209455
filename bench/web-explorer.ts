// The web explorer in headless Chromium: how big the site is and how fast it paints.
//   node --import tsx bench/web-explorer.ts [--run DIR] [--steps 300] [--loads 5] [--screenshot docs/images/web-explorer.png] [--doc]
// Without --run, trains configs/smoke.yaml on the bundled RetinaMNIST for --steps steps first. Then
// `medvae export-web`, and --loads fresh page loads from file:// each timing first contentful paint
// (the text and model card) and the sample grid drawn. Prints one JSON line: bytes of the page and
// its script (the 2 MB budget) and of the weights, the backend the page chose, per-load times and
// medians. --screenshot drops a test image on the page, paints a mask, fills it in, and keeps a
// full-page screenshot (the one in docs/). --doc writes the figures, stamped, into docs/web.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { arch, cpus, loadavg, tmpdir, type } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { chromium, type Page } from 'playwright-core';
import { openMedmnist } from '../src/data/medmnist.ts';
import { SITE_FILES } from '../src/web/site-data.ts';
import { gitCommit, replaceBlock } from './doc-tools.ts';

const { values: args } = parseArgs({
  options: {
    run: { type: 'string' },
    steps: { type: 'string', default: '300' },
    loads: { type: 'string', default: '5' },
    screenshot: { type: 'string' },
    doc: { type: 'boolean', default: false },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'medvae.js');
const work = mkdtempSync(join(tmpdir(), 'medvae-bench-web-'));

function medvae(cliArgs: string[]): void {
  const r = spawnSync(process.execPath, [BIN, ...cliArgs], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`medvae ${cliArgs[0]} failed (exit ${r.status})`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface Load {
  /** From navigation: the first text and model card on screen, and the sample grid drawn. */
  fcpMs: number;
  gridMs: number;
  backend: string;
  /** WebGL drawn by a software rasteriser (SwiftShader): the page says so. */
  software: boolean;
}

async function load(page: Page, url: string): Promise<Load> {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready === 'true' || document.body.dataset.failed, null, { timeout: 120_000 });
  const failed = await page.evaluate(() => document.body.dataset.failed);
  if (failed) throw new Error(`the page failed: ${failed}`);
  return page.evaluate(() => ({
    fcpMs: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
    gridMs: Number(document.body.dataset.gridDrawnMs),
    backend: document.body.dataset.backend ?? '',
    software: (document.getElementById('backend')?.textContent ?? '').includes('drawn in software'),
  }));
}

/** Drops a test image, paints over its middle, fills it in: the page with every section in use. */
async function useEverySection(page: Page): Promise<void> {
  const split = await openMedmnist(join(ROOT, 'data', 'retinamnist.npz'), 'test');
  const [raw] = await split.read([3]);
  await split.close();
  const png = await sharp(raw!.data, { raw: { width: raw!.width, height: raw!.height, channels: raw!.channels } })
    .png()
    .toBuffer();
  const done = (id: string): Promise<unknown> =>
    page.waitForFunction((section) => document.getElementById(section)?.dataset.state === 'done', id, { timeout: 120_000 });
  await page.setInputFiles('#image-file', { name: 'retina-test-3.png', mimeType: 'image/png', buffer: png });
  await done('your-image');
  const mask = (await page.$('#mask'))!;
  await mask.scrollIntoViewIfNeeded();
  const { x, y, width, height } = (await mask.boundingBox())!;
  await page.mouse.move(x + width * 0.3, y + height * 0.45);
  await page.mouse.down();
  await page.mouse.move(x + width * 0.7, y + height * 0.55, { steps: 10 });
  await page.mouse.up();
  await page.click('#impute');
  await done('imputation');
  await page.evaluate(() => window.scrollTo(0, 0));
}

try {
  let run = args.run;
  if (!run) {
    run = join(work, 'run');
    const train = ['train', '--config', 'configs/smoke.yaml', '--backend', 'wasm', '--log-format', 'plain'];
    medvae([...train, '--set', 'train.epochs=1000', '--max-steps', args.steps!, '--out', run]);
  }
  const site = join(work, 'site');
  medvae(['export-web', '--run', run, '--out', site, '--backend', 'wasm', '--reference', '200']);
  const bytes = (file: string): number => statSync(join(site, file)).size;
  const browser = await chromium.launch({
    executablePath: args.chromium,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const version = browser.version();
  const url = pathToFileURL(join(site, SITE_FILES.page)).href;
  const loads: Load[] = [];
  try {
    for (let i = 0; i < Number(args.loads); i++) {
      // A fresh context each time: nothing cached from the previous load.
      const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
      loads.push(await load(await context.newPage(), url));
      await context.close();
    }
    if (args.screenshot) {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await load(page, url);
      await useEverySection(page);
      await page.screenshot({ path: args.screenshot, fullPage: true });
    }
  } finally {
    await browser.close();
  }
  const weights = ['encoder', 'decoder'].reduce((sum, n) => sum + bytes(join(n, 'weights.bin')), 0);
  const result = {
    bench: 'web-explorer',
    commit: gitCommit(),
    date: new Date().toISOString(),
    page_and_script_bytes: bytes(SITE_FILES.page) + bytes(SITE_FILES.script),
    model_data_bytes: bytes(SITE_FILES.modelData),
    weights_bytes: weights,
    backend: `${loads[0]?.backend ?? ''}${loads[0]?.software ? ' (software)' : ''}`,
    first_contentful_paint_ms: loads.map((l) => Math.round(l.fcpMs)),
    first_contentful_paint_median_ms: Math.round(median(loads.map((l) => l.fcpMs))),
    grid_drawn_ms: loads.map((l) => l.gridMs),
    grid_drawn_median_ms: median(loads.map((l) => l.gridMs)),
    chromium: version,
    machine: `${type()} ${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    load_average: Number(loadavg()[0]!.toFixed(1)),
    screenshot: args.screenshot ?? null,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (args.doc) {
    const mb = (n: number): string => (n / 1e6).toFixed(2);
    const ok = replaceBlock('docs/web.md', 'web-explorer-bench', [
      `Measured by \`bench/web-explorer.ts\` at ${result.commit} on ${result.date.slice(0, 10)}: headless Chromium ${result.chromium}, ${result.machine} (load average ${result.load_average}), backend chosen: ${result.backend}, ${loads.length} fresh loads from file://, a ${args.run ? 'given run' : `smoke-config model trained ${args.steps} steps`}.`,
      '',
      '| what | figure |',
      '| --- | --- |',
      `| page and script (the 2 MB budget) | ${mb(result.page_and_script_bytes)} MB |`,
      `| model-data.js (weights and numbers) | ${mb(result.model_data_bytes)} MB |`,
      `| first contentful paint, median | ${result.first_contentful_paint_median_ms} ms (${result.first_contentful_paint_ms.join(', ')}) |`,
      `| sample grid drawn, median | ${result.grid_drawn_median_ms} ms (${result.grid_drawn_ms.join(', ')}) |`,
    ]);
    if (!ok) throw new Error('docs/web.md has no web-explorer-bench markers');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
