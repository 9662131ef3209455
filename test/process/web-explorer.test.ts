// `medvae export-web` end to end: a tiny run trained by `medvae train` (through its commander
// wiring in this process, as `medvae sample` runs; export-web runs as a process), exported, opened
// from file:// in headless Chromium without a GPU (the page falls back from WebGPU to what starts,
// WebGL on a software rasteriser or WebAssembly, and says which). The sample grid equals `medvae
// sample` for the same seed, from the same default sampler (the checkpoint's latent density), and
// `--latent prior`'s when the viewer picks the prior; a dropped-in image gets the reconstruction and
// -ELBO that the project's own functions give in Node, and its percentile among the exported
// training scores; two dropped images give an interpolation strip whose ends are their
// reconstructions; a painted mask is filled in with the observed pixels kept;
// every model-made picture carries its SYNTHETIC band; no request leaves the browser. A
// screenshot is kept in test-artifacts/web-explorer.png (docs/ gets bench/web-explorer.ts's).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { tf } from '../../src/util/tf.ts';
import { chromium, type Browser, type Page } from 'playwright-core';
import { initBackend } from '../../src/backend/index.ts';
import { openMedmnist } from '../../src/data/medmnist.ts';
import { transformSample } from '../../src/data/transforms.ts';
import type { RawImage } from '../../src/data/types.ts';
import { loadRun, type LoadedRun } from '../../src/run/checkpoint.ts';
import { denormalize } from '../../src/run/pixels.ts';
import { scoreImages } from '../../src/restore/score.ts';
import { sample } from '../../src/generate/sample.ts';
import { parseLatentDensity } from '../../src/models/latent-density.ts';
import { writeReport } from '../../src/report/write-report.ts';
import { checkExportTarget } from '../../src/web/export-site.ts';
import { BACKEND_LABELS, BACKEND_ORDER, type BackendName } from '../../src/web/page/backend-names.ts';
import { percentileOf, SITE_FILES, type SiteData } from '../../src/web/site-data.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { medvaeInProcess } from '../helpers/medvae-cli.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'medvae.js');
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');
const dir = tempDir('medvae-web-');
const data = join(dir, 'tiny.npz');
const run = join(dir, 'runs', 'vae');
const site = join(dir, 'site');
const sampledDir = join(dir, 'sampled');
const SEED = 3;
const SIZE = 32;

type Result = { status: number | null; stdout: string; stderr: string };

function medvaeSync(args: string[]): Result {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The CLI in a child process, without blocking this one (two commands can run side by side). */
function medvae(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

let browser: Browser | undefined;
let loaded: LoadedRun;
let exported: Result;
let sampled: Result;
let siteData: SiteData;
/** Two test-split images of the tiny dataset, as PNG files and as the raw pixels they hold. */
let pngs: Buffer[] = [];
let raws: RawImage[] = [];

before(async () => {
  writeTinyNpz(data, { train: 48, val: 8, test: 12, classes: 3 });
  const args = ['--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain', '--max-steps', '2'];
  const train = await medvaeInProcess(['train', ...args, '--out', run]);
  assert.equal(train.status, 0, train.stderr);
  const [exportResult, sampleResult] = await Promise.all([
    medvae(['export-web', '--run', run, '--out', site, '--backend', 'wasm', '--reference', '48']),
    medvaeInProcess(['sample', '--run', run, '--n', '16', '--seed', String(SEED), '--backend', 'wasm', '--out', `${sampledDir}/`]),
  ]);
  exported = exportResult;
  sampled = sampleResult;
  assert.equal(sampled.status, 0, sampled.stderr);
  assert.equal(exported.status, 0, exported.stderr);
  siteData = JSON.parse(readFileSync(join(site, SITE_FILES.metadata), 'utf8')) as SiteData;
  const split = await openMedmnist(data, 'test');
  raws = await split.read([0, 1]);
  await split.close();
  pngs = await Promise.all(
    raws.map((r) =>
      sharp(r.data, { raw: { width: r.width, height: r.height, channels: r.channels } })
        .png()
        .toBuffer(),
    ),
  );
  await initBackend('wasm');
  loaded = await loadRun(run);
  if (hasChromium) {
    // No GPU here, and --disable-gpu makes sure of it: the page must choose its backend by itself.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  }
});

after(async () => {
  await browser?.close();
  loaded?.model.dispose();
});

/** A model-made or dropped-in picture on the page: its mark, and its image pixels read back at native size (RGB). */
interface Picture {
  mark: string;
  pixels: number[];
  band: number[];
}

function pictures(page: Page, selector: string): Promise<Picture[]> {
  return page.$$eval(`${selector} canvas.picture`, (canvases) =>
    (canvases as HTMLCanvasElement[]).map((canvas) => {
      const size = Number(canvas.dataset.size);
      const zoom = Number(canvas.dataset.zoom);
      const context = canvas.getContext('2d')!;
      const all = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const pixels: number[] = [];
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const at = ((y * zoom + (zoom >> 1)) * canvas.width + x * zoom + (zoom >> 1)) * 4;
          pixels.push(all[at]!, all[at + 1]!, all[at + 2]!);
        }
      // Left edge of the band under the image, below its text.
      const band = ((canvas.height - 1) * canvas.width + 1) * 4;
      return {
        mark: canvas.classList.contains('synthetic') ? 'synthetic' : 'yours',
        pixels,
        band: [all[band]!, all[band + 1]!, all[band + 2]!],
      };
    }),
  );
}

/** Largest and mean absolute difference of two equally long pixel lists. */
function pixelDiff(a: readonly number[], b: ArrayLike<number>): { max: number; mean: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

/** Model output in [-1, 1] as the page shows it. */
function asBytes(values: ArrayLike<number>): number[] {
  return Array.from(values, (v) => denormalize(v));
}

/** An image as the page prepares it: the data layer's crop, resize and normalisation at the model's side. */
function prepared(raw: RawImage): Float32Array {
  const out = new Float32Array(SIZE * SIZE * 3);
  transformSample(raw, { size: SIZE, channels: 3, resize: siteData.resize, augment: { flip: false, rot90: false }, seed: 0 }, 0, 0, out, 0);
  return out;
}

async function reconstructionInNode(image: Float32Array): Promise<Float32Array> {
  const out = tf.tidy(() => loaded.model.reconstruct(tf.tensor4d(image, [1, SIZE, SIZE, 3])));
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}

async function waitDone(page: Page, section: string): Promise<void> {
  await page.waitForFunction((id) => document.getElementById(id)?.dataset.state !== 'working', section, { timeout: 30_000 });
  const state = await page.$eval(`#${section}`, (s) => [(s as HTMLElement).dataset.state, s.querySelector('.status')?.textContent ?? '']);
  assert.equal(state[0], 'done', `#${section}: ${state[1]}`);
}

/** Drops `file` on `selector` as a drag from the desktop would. */
async function dropFile(page: Page, selector: string, name: string, png: Buffer): Promise<void> {
  await page.$eval(
    selector,
    (zone, [fileName, bytes]) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(bytes as number[])], fileName as string, { type: 'image/png' }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    [name, [...png]] as const,
  );
}

test('export-web refuses an --out that holds other files, and leaves them as they were', () => {
  const mine = join(dir, 'my-folder');
  mkdirSync(mine, { recursive: true });
  writeFileSync(join(mine, 'notes.txt'), 'keep me');
  const r = medvaeSync(['export-web', '--run', run, '--out', mine]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^error: --out .*my-folder exists and is not an earlier medvae export-web site .*nothing was written\n$/);
  assert.equal(readFileSync(join(mine, 'notes.txt'), 'utf8'), 'keep me');
  writeFileSync(join(dir, 'a-file'), 'x');
  assert.throws(() => checkExportTarget(join(dir, 'a-file')), /--out .*a-file is a file; give a new folder/);
  // An earlier export may be replaced.
  assert.doesNotThrow(() => checkExportTarget(site));
});

test('export-web writes the site and says how to open it, the report mentions it; the page and its script stay under 2 MB', () => {
  assert.match(exported.stdout, /open it: double-click index\.html .* file:\/\/.*\/site\/index\.html/);
  assert.match(exported.stdout, /never leave the computer/);
  for (const file of [
    'index.html',
    'explorer.js',
    'model-data.js',
    'site.json',
    'encoder/model.json',
    'encoder/weights.bin',
    'decoder/model.json',
    'decoder/weights.bin',
  ])
    assert.ok(existsSync(join(site, file)), file);
  const html = readFileSync(join(site, 'index.html'), 'utf8');
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html), 'no remote URL in the page');
  const pageBytes = html.length + readFileSync(join(site, 'explorer.js')).length;
  assert.ok(pageBytes < 2e6, `page and script: ${pageBytes} bytes`);
  assert.equal(siteData.reference.negElbo.length, 48);
  assert.ok(siteData.decoderSigma > 0);
  // The site starts with the sampler `medvae sample` chose by default, and carries the checkpoint's density.
  const line = /^sampler: (\w+) \((.*)\)$/m.exec(sampled.stderr);
  assert.ok(line, sampled.stderr);
  assert.deepEqual(siteData.sampling, { sampler: line[1], basis: 'likelihood', samplers: ['prior', 'gaussian', 'mixture'] });
  assert.match(line[2]!, /^highest held-out latent log-likelihood/);
  assert.deepEqual(parseLatentDensity(readFileSync(join(site, 'latent-density.json'), 'utf8'), 'site'), loaded.latentDensity);
  // The run's report points at the command.
  const report = readFileSync(writeReport(run, { out: join(dir, 'report.html') }), 'utf8');
  assert.ok(report.includes(`medvae export-web --run ${run} --out SITE/`));
});

test(
  hasChromium
    ? 'the site in Chromium from file://: samples, scores, interpolation and fill-in as the CLI computes them, offline'
    : 'site in Chromium (SKIPPED: no /usr/bin/chromium)',
  { skip: !hasChromium },
  async () => {
    const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    let loadedAt = Infinity;
    const afterLoad: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      requests.push(r.url());
      if (Date.now() > loadedAt) afterLoad.push(r.url());
    });
    await page.goto(`${pathToFileURL(join(site, 'index.html')).href}?seed=${SEED}`, { waitUntil: 'load' });
    loadedAt = Date.now();
    await page.waitForFunction(() => document.body.dataset.ready === 'true' || document.body.dataset.failed, null, { timeout: 60_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.failed), undefined);
    // Whichever backend started (WebGL on a software rasteriser here, WebAssembly where even that is
    // missing), the page names it in words.
    const backend = (await page.evaluate(() => document.body.dataset.backend)) as BackendName;
    assert.ok(BACKEND_ORDER.includes(backend), backend);
    const backendLine = await page.$eval('#backend', (e) => e.textContent ?? '');
    assert.ok(backendLine.startsWith(`Computing on this computer with ${BACKEND_LABELS[backend]}`), backendLine);
    assert.ok(backendLine.endsWith('. Nothing you open here leaves this computer.'), backendLine);

    // The grid: the same pixels as `medvae sample --seed 3` (its default sampler), each marked synthetic.
    const { sampler } = siteData.sampling;
    assert.equal(await page.$eval('#sampler', (e) => (e as HTMLSelectElement).value), sampler);
    assert.match(
      await page.$eval('#sampler-line', (e) => e.textContent ?? ''),
      /^The model makes each image from a short code .* It is the default because/,
    );
    const grid = await pictures(page, '#grid');
    assert.equal(grid.length, 16);
    for (const [k, picture] of grid.entries()) {
      assert.equal(picture.mark, 'synthetic');
      assert.deepEqual(picture.band, [0xb0, 0x00, 0x20]);
      const cli = await sharp(join(sampledDir, `${String(k).padStart(6, '0')}.png`))
        .removeAlpha()
        .raw()
        .toBuffer();
      const diff = pixelDiff(picture.pixels, cli);
      assert.ok(diff.max <= 2 && diff.mean < 0.05, `sample ${k}: max ${diff.max}, mean ${diff.mean.toFixed(3)} levels from medvae sample`);
    }
    assert.match(
      await page.$eval('#seed-line', (e) => e.textContent ?? ''),
      new RegExp(`medvae sample --run … --latent ${sampler} --n 16 --seed 3`),
    );
    // Picking the prior redraws the grid as `medvae sample --latent prior --seed 3` (sample() in this process).
    await page.selectOption('#sampler', 'prior');
    await waitDone(page, 'samples');
    const fromPrior = await sample(loaded, { n: 16, seed: SEED, latent: 'prior' });
    const priorDiff = pixelDiff(
      (await pictures(page, '#grid')).flatMap((p) => p.pixels),
      fromPrior.pixels,
    );
    assert.ok(priorDiff.max <= 2 && priorDiff.mean < 0.05, `prior grid: max ${priorDiff.max}, mean ${priorDiff.mean.toFixed(3)}`);
    assert.match(await page.$eval('#seed-line', (e) => e.textContent ?? ''), /--latent prior --n 16 --seed 3/);
    assert.match(
      await page.$eval('#sampler-line', (e) => e.textContent ?? ''),
      /standard bell curve built into the model .* This is not the default/,
    );

    // A dropped-in image: its reconstruction and -ELBO are what the project's functions give in Node.
    await page.setInputFiles('#image-file', { name: 'scan.png', mimeType: 'image/png', buffer: pngs[0]! });
    await waitDone(page, 'your-image');
    const image = prepared(raws[0]!);
    const [seen, reconstruction] = await pictures(page, '#analysis-pictures');
    assert.equal(seen!.mark, 'yours');
    assert.deepEqual(seen!.pixels, asBytes(image));
    assert.equal(reconstruction!.mark, 'synthetic');
    assert.ok(pixelDiff(reconstruction!.pixels, asBytes(await reconstructionInNode(image))).max <= 2);
    const score = await page.$eval('#score', (e) => ({ ...(e as HTMLElement).dataset }));
    const expected = await scoreImages(
      loaded.model,
      { images: image, labels: new Float32Array(0), n: 1, size: SIZE, channels: 3, labelWidth: 0, labelKind: 'none' },
      { sigma: siteData.decoderSigma, samples: 1, seed: 0, batch: 1 },
    );
    const negElbo = Number(score['negElbo']);
    assert.ok(
      Math.abs(negElbo - expected.neg_elbo[0]!) <= 1e-3 * Math.abs(expected.neg_elbo[0]!),
      `page ${negElbo}, node ${expected.neg_elbo[0]}`,
    );
    assert.equal(Number(score['percentile']), percentileOf(siteData.reference.negElbo, negElbo));
    assert.match(await page.$eval('#score-baseline', (e) => e.textContent ?? ''), /^training images: median -?[\d.]+, 95% of them below/);

    // Interpolation between two dropped images: 8 synthetic frames, the ends their reconstructions.
    await dropFile(page, '#end-a', 'a.png', pngs[0]!);
    await waitDone(page, 'interpolation');
    await dropFile(page, '#end-b', 'b.png', pngs[1]!);
    await waitDone(page, 'interpolation');
    await page.click('#interpolate');
    await waitDone(page, 'interpolation');
    const strip = await pictures(page, '#strip');
    assert.equal(strip.length, 8);
    assert.ok(strip.every((p) => p.mark === 'synthetic'));
    assert.ok(pixelDiff(strip[0]!.pixels, asBytes(await reconstructionInNode(prepared(raws[0]!)))).max <= 2);
    assert.ok(pixelDiff(strip[7]!.pixels, asBytes(await reconstructionInNode(prepared(raws[1]!)))).max <= 2);

    // Paint the middle of the image and fill it in: painted pixels change, the others are kept exactly.
    const maskCanvas = (await page.$('#mask'))!;
    await maskCanvas.scrollIntoViewIfNeeded();
    const { x, y, width, height } = (await maskCanvas.boundingBox())!;
    await page.mouse.move(x + width * 0.35, y + height * 0.5);
    await page.mouse.down();
    await page.mouse.move(x + width * 0.65, y + height * 0.5, { steps: 8 });
    await page.mouse.up();
    await page.click('#impute');
    await waitDone(page, 'imputation');
    const [filled, smooth] = await pictures(page, '#imputed');
    assert.equal(filled!.mark, 'synthetic');
    assert.equal(smooth!.mark, 'synthetic');
    const original = asBytes(image);
    const centre = (SIZE / 2) * SIZE + SIZE / 2;
    const outside = 2 * SIZE + 2;
    assert.deepEqual(filled!.pixels.slice(outside * 3, outside * 3 + 3), original.slice(outside * 3, outside * 3 + 3));
    assert.notDeepEqual(filled!.pixels.slice(centre * 3, centre * 3 + 3), original.slice(centre * 3, centre * 3 + 3));
    const acceptance = Number(await page.$eval('#imputed', (e) => (e as HTMLElement).dataset.acceptance));
    assert.ok(acceptance >= 0 && acceptance <= 1, `acceptance ${acceptance}`);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'web-explorer.png'), fullPage: true });
    assert.deepEqual(errors, []);
    // The page's own three files, then nothing but in-memory blobs (the wasm binaries it carries).
    const siteUrl = pathToFileURL(site).href;
    const fetched = requests.filter((u) => !u.startsWith('blob:')).map((u) => u.split('?')[0]);
    assert.deepEqual(
      fetched.sort(),
      ['explorer.js', 'index.html', 'model-data.js'].map((f) => `${siteUrl}/${f}`),
    );
    assert.deepEqual(
      afterLoad.filter((u) => !u.startsWith('blob:')),
      [],
    );
    // And the page's Content-Security-Policy would stop any script that tried.
    const blocked = await page.evaluate(
      () =>
        new Promise<string>((resolve) => {
          document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective));
          fetch('http://127.0.0.1:9/').catch(() => undefined);
        }),
    );
    assert.equal(blocked, 'connect-src');
    await page.close();
  },
);
