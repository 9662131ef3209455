// `medvae impute` and `medvae score` end to end on a tiny run trained by the real `medvae train`:
// the npz reads back through the MedMNIST reader (and its masks as a --mask file), the grid is a
// PNG, scores.csv reads back with AUROC per score, and bad input fails in one line.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openMedmnist } from '../src/data/medmnist.ts';
import { readScoresCsv } from '../src/restore/scores-csv.ts';
import { maskSource, parseMaskSpec } from '../src/restore/mask.ts';
import { writeTinyNpz } from './helpers/tiny-data.ts';
import { tempDir } from './helpers/temp-dir.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'medvae.js');
const dir = tempDir('medvae-restore-cli-');
const data = join(dir, 'tiny.npz');
const run = join(dir, 'runs', 'vae');

function medvae(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  writeTinyNpz(data, { train: 48, val: 8, test: 12, classes: 3 });
  const r = medvae([
    'train',
    '--config',
    'configs/smoke.yaml',
    '--data',
    data,
    '--backend',
    'wasm',
    '--log-format',
    'plain',
    '--max-steps',
    '2',
    '--out',
    run,
  ]);
  assert.equal(r.status, 0, r.stderr);
});

test('impute writes an npz that reads back, masks included, and a grid', async () => {
  const out = join(dir, 'imputed.npz');
  const r = medvae([
    'impute',
    '--run',
    run,
    '--mask',
    'center:0.25',
    '--n',
    '5',
    '--iters',
    '2',
    '--samples',
    '2',
    '--backend',
    'wasm',
    '--out',
    out,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim()) as Record<string, number>;
  assert.equal(summary['n'], 5);
  assert.ok(Number.isFinite(summary['psnr_missing']) && Number.isFinite(summary['harmonic_psnr_missing']));
  assert.ok(summary['acceptance']! >= 0 && summary['acceptance']! <= 1);
  const split = await openMedmnist(out, 'test');
  assert.equal(split.length, 5);
  assert.deepEqual(split.imageShape, [32, 32, 3]);
  const [imputed] = await split.read([0]);
  await split.close();
  assert.equal(imputed!.data.length, 32 * 32 * 3);
  const masks = (await maskSource(parseMaskSpec(out), 32, 0))(0, 5);
  assert.equal(
    masks.reduce((s, v) => s + v, 0),
    5 * 16 * 16,
    'the written masks are the centred 16x16 squares',
  );

  const grid = join(dir, 'grid.png');
  const g = medvae([
    'impute',
    '--run',
    run,
    '--mask',
    out,
    '--method',
    'pseudo-gibbs',
    '--n',
    '3',
    '--iters',
    '2',
    '--samples',
    '1',
    '--backend',
    'wasm',
    '--out',
    grid,
  ]);
  assert.equal(g.status, 0, g.stderr);
  const meta = await sharp(grid).metadata();
  assert.equal(meta.width, 3 * 34 + 2);
  assert.equal(meta.height, 4 * 34 + 2);
});

test('score writes one CSV row per image and the AUROC of each score', () => {
  const out = join(dir, 'scores.csv');
  const r = medvae(['score', '--run', run, '--samples', '3', '--normal', '0', '--backend', 'wasm', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const t = readScoresCsv(out);
  assert.equal(t.index.length, 12);
  assert.ok(t.label.every((l) => l !== null && l >= 0 && l < 3));
  const summary = JSON.parse(r.stdout.trim()) as { auroc: Record<string, number> };
  for (const k of ['neg_elbo', 'neg_iwae', 'recon_mse']) assert.ok(summary.auroc[k]! >= 0 && summary.auroc[k]! <= 1, k);
});

test('bad input fails in one line naming it', async () => {
  const absent = medvae(['score', '--run', run, '--normal', '7', '--backend', 'wasm', '--out', join(dir, 'x.csv')]);
  assert.equal(absent.status, 1);
  assert.match(absent.stderr.trim(), /^error: --normal 7: no image of class 7 here; classes present: 0/);
  assert.ok(!existsSync(join(dir, 'x.csv')));
  const png = join(dir, 'small.png');
  writeFileSync(
    png,
    await sharp(Buffer.alloc(28 * 28, 255), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toBuffer(),
  );
  const wrong = medvae(['impute', '--run', run, '--mask', png, '--backend', 'wasm', '--out', join(dir, 'y.png')]);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr.trim(), /^error: .*small\.png: mask is 28x28, the model sees 32x32 images; give a 32x32 mask$/);
  const none = medvae(['impute', '--run', run, '--mask', 'center:0.0001', '--backend', 'wasm', '--out', join(dir, 'z.png')]);
  assert.equal(none.status, 1);
  assert.match(none.stderr.trim(), /^error: mask center:0.0001: image 0 has no missing pixels/);
});

test('medvae eval --tasks impute,denoise,score writes the restoration numbers into eval.json; the report shows them', () => {
  const r = medvae([
    'eval',
    '--run',
    run,
    '--n',
    '8',
    '--feature-steps',
    '5',
    '--tasks',
    'impute,denoise,score',
    '--normal',
    '0',
    '--backend',
    'wasm',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as {
    restoration: {
      scores: { auroc: Record<string, number>; histograms: Record<string, { normal: number[]; rest: number[] }> };
      imputation: { methods: Record<string, { psnr: number }>; baselines: { harmonic: { psnr: number } } };
      denoising: { noise: string; median: { window: number } }[];
      grids: Record<string, string>;
    };
  };
  assert.deepEqual(Object.keys(doc.restoration.imputation.methods), ['pseudo-gibbs', 'mwg']);
  assert.ok(Number.isFinite(doc.restoration.imputation.baselines.harmonic.psnr));
  assert.deepEqual(
    doc.restoration.denoising.map((d) => d.noise),
    ['gaussian:0.05', 'gaussian:0.1', 'gaussian:0.2', 'saltpepper:0.05', 'poisson:30'],
  );
  const sc = doc.restoration.scores;
  for (const k of ['neg_elbo', 'neg_iwae', 'recon_mse']) {
    assert.ok(sc.auroc[k]! >= 0 && sc.auroc[k]! <= 1, k);
    const h = sc.histograms[k]!;
    assert.equal(
      [...h.normal, ...h.rest].reduce((s, v) => s + v, 0),
      8,
      'every image in one bin',
    );
  }
  for (const file of Object.values(doc.restoration.grids)) assert.ok(existsSync(join(run, file)), file);
  assert.match(r.stdout, /impute center:0\.25 {2}mwg PSNR \(missing px\)/);
  const report = medvae(['report', '--run', run, '--out', join(dir, 'report.html')]);
  assert.equal(report.status, 0, report.stderr);
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<h3>Restoration \(split test, seed 0\)<\/h3>/);
  assert.match(html, /aria-label="neg_iwae"/);
});
