// `medvae impute` and `medvae score` end to end on a tiny run trained by the real `medvae train`:
// the npz reads back through the MedMNIST reader (and its masks as a --mask file), the grid is a
// PNG, scores.csv reads back with AUROC per score, and bad input fails in one line. Then `--out`
// on every command that writes images (a .png grid with labels, a folder, an npz, nothing else)
// and the tables impute and denoise print; denoise's numbers against its npz and the evaluation's
// task. The commands run in this process through their commander wiring (medvaeInProcess); a real
// `medvae` process for a failure (exit 1). A usage error's exit 2 from a real `medvae sample` is
// cli-errors.test.ts's.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openMedmnist } from '../../src/data/medmnist.ts';
import { NpzArchive } from '../../src/data/npz.ts';
import { readScoresCsv } from '../../src/restore/scores-csv.ts';
import { maskSource, parseMaskSpec } from '../../src/restore/mask.ts';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadRun } from '../../src/run/checkpoint.ts';
import { addNoise, parseNoise } from '../../src/restore/noise.ts';
import { readImages, selectImages, sigmaImages } from '../../src/restore/run-data.ts';
import { denoisingTask, VAL_STREAM } from '../../src/restore/tasks.ts';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { medvaeInProcess as medvae, medvaeProcess, type CliResult } from '../helpers/medvae-cli.ts';

const dir = tempDir('medvae-restore-cli-');
const data = join(dir, 'tiny.npz');
const run = join(dir, 'runs', 'vae');

// The run, then every image-writing command in each --out form (see WRITERS below), whose
// outputs and what they printed the tests below read.
before(async () => {
  // 2 validation images: what denoise tunes its baselines and measures the decoder's error on, every time.
  writeTinyNpz(data, { train: 48, val: 2, test: 12, classes: 3 });
  const r = await medvae(['train', ...smokeFlags(data), '--max-steps', '2', '--out', run]);
  assert.equal(r.status, 0, r.stderr);
  for (const form of FORMS) {
    for (const w of WRITERS) written.set(`${w.command} ${form}`, await writer(w, outOf(w, form), form === 'npz' ? jsonOf(w) : []));
  }
});

test('impute writes an npz that reads back, masks included, and a grid', async () => {
  const out = join(dir, 'imputed.npz');
  const r = await medvae([
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
    '--json',
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
  const g = await medvae([
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
  assert.ok(meta.width! > 3 * 34 + 2, 'three tiles and a strip of row labels');
  assert.equal(meta.height, 4 * 34 + 2);
});

test('score writes one CSV row per image and the AUROC of each score', async () => {
  const out = join(dir, 'scores.csv');
  const r = await medvae(['score', '--run', run, '--samples', '3', '--normal', '0', '--backend', 'wasm', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const t = readScoresCsv(out);
  assert.equal(t.index.length, 12);
  assert.ok(t.label.every((l) => l !== null && l >= 0 && l < 3));
  const summary = JSON.parse(r.stdout.trim()) as { auroc: Record<string, number> };
  for (const k of ['neg_elbo', 'neg_iwae', 'recon_mse']) assert.ok(summary.auroc[k]! >= 0 && summary.auroc[k]! <= 1, k);
});

test('bad input fails in one line naming it', async () => {
  // A real process: exit 1, the line on its stderr.
  const absent = medvaeProcess(['score', '--run', run, '--normal', '7', '--backend', 'wasm', '--out', join(dir, 'x.csv')]);
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
  const wrong = await medvae(['impute', '--run', run, '--mask', png, '--backend', 'wasm', '--out', join(dir, 'y.png')]);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr.trim(), /^error: .*small\.png: mask is 28x28, the model sees 32x32 images; give a 32x32 mask$/);
  const none = await medvae(['impute', '--run', run, '--mask', 'center:0.0001', '--backend', 'wasm', '--out', join(dir, 'z.png')]);
  assert.equal(none.status, 1);
  assert.match(none.stderr.trim(), /^error: mask center:0.0001: image 0 has no missing pixels/);
});

test('medvae eval --tasks impute,denoise,score writes the restoration numbers into eval.json; the report shows them', async () => {
  // A copy: eval.json (and the sampler it chooses) stays out of the run the other tests read.
  const evaluated = join(dir, 'runs', 'evaluated');
  cpSync(run, evaluated, { recursive: true });
  const r = await medvae([
    'eval',
    '--run',
    evaluated,
    '--n',
    '4',
    '--feature-steps',
    '1',
    '--tasks',
    'impute,denoise,score',
    '--normal',
    '0',
    '--backend',
    'wasm',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(readFileSync(join(evaluated, 'eval.json'), 'utf8')) as {
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
      4,
      'every image in one bin',
    );
  }
  for (const file of Object.values(doc.restoration.grids)) assert.ok(existsSync(join(evaluated, file)), file);
  assert.match(r.stdout, /impute center:0\.25 {2}mwg PSNR \(missing px\)/);
  const report = await medvae(['report', '--run', evaluated, '--out', join(dir, 'report.html')]);
  assert.equal(report.status, 0, report.stderr);
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<h3>Restoration \(split test, seed 0\)<\/h3>/);
  assert.match(html, /aria-label="neg_iwae"/);
});

/** Each image-writing command on this run, with what its outputs hold (32 px tiles, 2 px padding). */
const WRITERS: {
  command: string;
  args: string[];
  /** Tiles across and down in the .png grid. */
  cols: number;
  rows: number;
  rowLabels: boolean;
  title: boolean;
  /** Files in the folder form. */
  files: number;
  /** Arrays (name: shape) the npz form holds, among others. */
  arrays: Record<string, number[]>;
}[] = [
  {
    command: 'sample',
    args: ['--n', '5'],
    cols: 3,
    rows: 2,
    rowLabels: false,
    title: true,
    files: 5,
    arrays: { train_images: [5, 32, 32, 3], train_labels: [5, 1], test_images: [0, 32, 32, 3] },
  },
  {
    command: 'reconstruct',
    args: ['--n', '3'],
    cols: 3,
    rows: 2,
    rowLabels: true,
    title: false,
    files: 6,
    arrays: { test_images: [3, 32, 32, 3], test_originals: [3, 32, 32, 3], test_labels: [3, 1] },
  },
  {
    command: 'denoise',
    args: ['--n', '3', '--noise', 'gaussian:0.2'],
    cols: 3,
    rows: 3,
    rowLabels: true,
    title: false,
    files: 9,
    arrays: { test_images: [3, 32, 32, 3], test_noisy: [3, 32, 32, 3], test_originals: [3, 32, 32, 3], test_means: [3, 32, 32, 3] },
  },
  {
    command: 'interpolate',
    args: ['--pairs', '2', '--steps', '4'],
    cols: 4,
    rows: 2,
    rowLabels: true,
    title: true,
    files: 8,
    arrays: { test_images: [8, 32, 32, 3], test_labels: [8, 1], test_endpoints: [2, 2, 32, 32, 3] },
  },
  {
    command: 'impute',
    args: ['--mask', 'center:0.25', '--n', '3', '--iters', '1', '--samples', '2'],
    cols: 3,
    rows: 4,
    rowLabels: true,
    title: false,
    files: 12,
    arrays: { test_images: [3, 32, 32, 3], test_masks: [3, 32, 32], test_imputations: [3, 2, 32, 32, 3] },
  },
];

type Writer = (typeof WRITERS)[number];

/** The three --out forms: a .png grid, a folder, an npz. */
const FORMS = ['png', 'dir', 'npz'] as const;
type Form = (typeof FORMS)[number];

const outOf = (w: Writer, form: Form): string => join(dir, `out-${w.command}${form === 'dir' ? '' : `.${form}`}`);
/** impute and denoise print JSON instead of their table with --json: the npz form asks for it. */
const jsonOf = (w: Writer): string[] => (w.command === 'impute' || w.command === 'denoise' ? ['--json'] : []);

/** What each writer did in before(), by `${command} ${form}`. */
const written = new Map<string, CliResult>();

function writer(w: Writer, out: string, more: string[] = []): Promise<CliResult> {
  return medvae([w.command, '--run', run, ...w.args, '--backend', 'wasm', ...more, '--out', out]);
}

/** What a writer of before() did, having succeeded. */
function writtenBy(command: string, form: Form): CliResult {
  const r = written.get(`${command} ${form}`)!;
  assert.equal(r.status, 0, `${command} --out ${form}: ${r.stderr}`);
  return r;
}

/** stdout of impute or denoise with --json (the npz form) or without (the .png form). */
const stdoutOf = (command: string, json: boolean): string => writtenBy(command, json ? 'npz' : 'png').stdout;

/** Whether a region of a PNG holds a dark pixel (text on the white strip), i.e. is not all background. */
async function hasInk(png: string, region: { left: number; top: number; width: number; height: number }): Promise<boolean> {
  const { data, info } = await sharp(png).extract(region).raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < data.length; i += info.channels) if (data[i]! + data[i + 1]! + data[i + 2]! < 3 * 100) return true;
  return false;
}

function filesUnder(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(folder, f)).isFile());
}

test('--out x.png writes one grid image with its label strips on every image-writing command', async () => {
  for (const w of WRITERS) {
    const out = outOf(w, 'png');
    writtenBy(w.command, 'png');
    assert.ok(statSync(out).isFile(), `${w.command}: one file, not a folder`);
    const { width, height } = await sharp(out).metadata();
    const tilesWidth = w.cols * 34 + 2;
    const tilesHeight = w.rows * 34 + 2;
    // The tiles sit at the bottom, right of the row-label strip; the title line is above them
    // (and may make the image wider than the tiles, to its right).
    const top = height! - tilesHeight;
    assert.equal(top > 0, w.title, `${w.command}: a title line iff expected (${width} x ${height})`);
    if (w.title) assert.ok(await hasInk(out, { left: 0, top: 0, width: width!, height: top }), `${w.command}: title drawn`);
    if (w.rowLabels) {
      const left = width! - tilesWidth;
      assert.ok(left > 0, `${w.command}: a row-label strip (${width} x ${height})`);
      assert.ok(await hasInk(out, { left: 0, top, width: left, height: tilesHeight }), `${w.command}: row labels drawn`);
    } else {
      assert.ok(width! >= tilesWidth, `${w.command}: ${width} x ${height}`);
    }
  }
});

test('--out DIR writes one PNG per image, into subfolders by row, and keeps what was in an existing folder', async () => {
  for (const w of WRITERS) {
    const out = outOf(w, 'dir');
    writtenBy(w.command, 'dir');
    const files = filesUnder(out);
    assert.equal(files.length, w.files, `${w.command}: ${files.join(' ')}`);
    assert.ok(
      files.every((f) => f.endsWith('.png')),
      w.command,
    );
    const meta = await sharp(join(out, files[0]!)).metadata();
    assert.deepEqual([meta.width, meta.height], [32, 32], w.command);
  }
  assert.deepEqual(readdirSync(join(dir, 'out-denoise')).sort(), ['clean', 'denoised', 'noisy']);
  assert.deepEqual(readdirSync(join(dir, 'out-impute')).sort(), ['filled', 'masked', 'original', 'spread']);
  const existing = join(dir, 'existing.d');
  mkdirSync(existing);
  writeFileSync(join(existing, 'keep.txt'), 'mine');
  assert.equal((await writer(WRITERS[1]!, existing)).status, 0);
  assert.equal(readFileSync(join(existing, 'keep.txt'), 'utf8'), 'mine');
  assert.equal(filesUnder(existing).length, 6 + 1);
});

test('--out x.npz writes arrays in the MedMNIST layout on every image-writing command', async () => {
  for (const w of WRITERS) {
    const out = outOf(w, 'npz');
    writtenBy(w.command, 'npz');
    const npz = await NpzArchive.open(out);
    try {
      for (const [name, shape] of Object.entries(w.arrays))
        assert.deepEqual((await npz.openArray(name)).shape, shape, `${w.command}: ${name}`);
      for (const split of ['train', 'val', 'test'])
        assert.ok(npz.arrayNames().includes(`${split}_images`), `${w.command}: ${split}_images`);
    } finally {
      await npz.close();
    }
  }
});

test('--out with another extension, or a .png that is a folder, is a usage error naming the three forms', async () => {
  for (const w of WRITERS) {
    const out = join(dir, `bad-${w.command}.jpg`);
    const r = await writer(w, out);
    assert.equal(r.status, 2, `${w.command}: ${r.stderr}`);
    assert.match(
      r.stderr.trim(),
      /^error: --out .*bad-\w+\.jpg: .*FILE\.png \(one labelled grid image\), DIR \(.*\) or FILE\.npz \(/,
      w.command,
    );
    assert.ok(!existsSync(out), `${w.command} wrote nothing`);
  }
  const folder = join(dir, 'a-folder.png');
  mkdirSync(folder);
  const r = await writer(WRITERS[0]!, folder);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr.trim(), /^error: --out .*a-folder\.png is an existing folder/);
  assert.deepEqual(readdirSync(folder), [], 'the folder is untouched');
});

/** The `metric  model X  name Y ...  <- who better` line of a summary table. */
function tableLine(stdout: string, metric: string): { values: Record<string, string>; winner: string | undefined } {
  const line = stdout.split('\n').find((l) => l.startsWith(metric));
  assert.ok(line, `a line for ${metric} in:\n${stdout}`);
  const [cells, verdict] = line.slice(metric.length).split('<-');
  const values: Record<string, string> = {};
  for (const m of cells!.matchAll(/([a-z][a-z ]*?) (-?[0-9.]+|n\/a)(?= |$)/g)) values[m[1]!.trim()] = m[2]!;
  return { values, winner: verdict?.trim().replace(/ better$/, '') };
}

test('impute and denoise print a table of the model beside the baselines and the winner; --json the same numbers as JSON', () => {
  const table = stdoutOf('impute', false);
  const s = JSON.parse(stdoutOf('impute', true).trim()) as Record<string, number>;
  const psnr = tableLine(table, 'psnr_missing');
  assert.deepEqual(psnr.values, {
    model: s['psnr_missing']!.toFixed(2),
    'mean fill': s['mean_fill_psnr_missing']!.toFixed(2),
    harmonic: s['harmonic_psnr_missing']!.toFixed(2),
  });
  const [bestName, bestValue] = [
    ['mean fill', s['mean_fill_psnr_missing']!],
    ['harmonic', s['harmonic_psnr_missing']!],
  ].reduce((a, b) => (b[1]! > a[1]! ? b : a)) as [string, number];
  assert.equal(psnr.winner, s['psnr_missing']! > bestValue ? 'model' : bestName);
  assert.equal(tableLine(table, 'ssim_missing').values['model'], s['ssim_missing']!.toFixed(4));
  assert.throws(() => JSON.parse(table.trim()), 'the default is the table, not JSON');

  const dTable = stdoutOf('denoise', false);
  const d = JSON.parse(stdoutOf('denoise', true).trim()) as Record<string, number>;
  // gaussian:0.2 by default writes mean + input ("model"); the decoder mean is shown beside it.
  assert.equal(d['denoised'] as unknown, 'combined');
  for (const [metric, key, digits] of [
    ['psnr', (name: string) => `psnr_${name}_db`, 2],
    ['ssim', (name: string) => `ssim_${name}`, 4],
  ] as const) {
    const line = tableLine(dTable, metric);
    const cells: [string, number][] = [
      ['noisy input', d[key('noisy')]!],
      ['decoder mean', d[key('mean')]!],
      ['gaussian blur', d[key('gaussian_blur')]!],
      ['median', d[key('median')]!],
    ];
    assert.equal(d[key('denoised')], d[key('combined')]);
    assert.deepEqual(line.values, {
      model: d[key('denoised')]!.toFixed(digits),
      ...Object.fromEntries(cells.map(([name, v]) => [name, v.toFixed(digits)])),
    });
    const [bestName, best] = cells.reduce((a, b) => (b[1] > a[1] ? b : a));
    assert.equal(line.winner, d[key('denoised')]! > best ? 'model' : bestName, metric);
  }
  assert.match(
    dTable,
    new RegExp(
      `model = mean \\+ input; gaussian blur sigma ${d['gaussian_blur_sigma']} px and median ${d['median_window']}x${d['median_window']} chosen by PSNR on 2 images of .*tiny\\.npz\\[val\\]`,
    ),
  );
});

/** Values of a uint8 image array of an npz, in the model's [-1, 1]. */
async function npzValues(file: string, name: string): Promise<Float32Array> {
  const npz = await NpzArchive.open(file);
  try {
    const array = await npz.openArray(name);
    const bytes = await array.readRows(0, array.shape[0]!);
    return Float32Array.from(bytes, (v) => v / 127.5 - 1);
  } finally {
    await npz.close();
  }
}

/** Mean over images of each image's PSNR (dB, data range 2), computed here from scratch. */
function meanPsnr(a: Float32Array, b: Float32Array, n: number): number {
  const per = a.length / n;
  let sum = 0;
  for (let k = 0; k < n; k++) {
    let se = 0;
    for (let i = k * per; i < (k + 1) * per; i++) se += (a[i]! - b[i]!) ** 2;
    sum += 10 * Math.log10(4 / (se / per));
  }
  return sum / n;
}

test("denoise: its numbers are the evaluation task's; the written npz gives its PSNRs back, and mean + input is the formula on the written mean and noisy values", async () => {
  const out = outOf(
    WRITERS.find((w) => w.command === 'denoise')!,
    'npz',
  );
  const d = JSON.parse(stdoutOf('denoise', true).trim()) as Record<string, number>;
  assert.match(writtenBy('denoise', 'npz').stderr, /denoised = mean \+ input, .*: the default for gaussian:0\.2, whose variance is known/);
  const [clean, noisy, mean, denoised] = await Promise.all(
    ['test_originals', 'test_noisy', 'test_means', 'test_images'].map((name) => npzValues(out, name)),
  );
  // PSNR from the 8-bit arrays against the command's, from float values: quantisation moves it by far less than 0.02 dB.
  for (const [key, values] of [
    ['psnr_noisy_db', noisy],
    ['psnr_mean_db', mean],
    ['psnr_denoised_db', denoised],
  ] as const) {
    assert.ok(Math.abs(meanPsnr(values, clean!, 3) - d[key]!) < 0.02, `${key}: ${meanPsnr(values, clean!, 3)} vs ${d[key]}`);
  }

  await initBackend('wasm', () => undefined);
  const { config, model } = await loadRun(run);
  try {
    // The decoder mean's squared error at each value on the validation images at the same noise (d2).
    const { images: val } = await sigmaImages(config, 0);
    const spec = parseNoise('gaussian:0.2');
    const noisyVal = addNoise(val.images, val.n, val.channels, spec, 0, 0, VAL_STREAM);
    const decodedVal = tf.tidy(() => model.reconstruct(tf.tensor4d(noisyVal, [val.n, 32, 32, 3])).dataSync() as Float32Array);
    const per = 32 * 32 * 3;
    const d2 = new Float64Array(per);
    for (let i = 0; i < decodedVal.length; i++) d2[i % per]! += (decodedVal[i]! - val.images[i]!) ** 2 / val.n;
    // x = (d2 y + s2 m) / (s2 + d2), s2 = (2 sigma)^2 in [-1, 1] units; written 8-bit values are
    // within half a level of the exact ones, so the formula on them is within a level.
    const s2 = 0.4 ** 2;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < denoised!.length; i++) {
      const w = d2[i % per]!;
      const expected = (w * noisy![i]! + s2 * mean![i]!) / (s2 + w);
      worst = Math.max(worst, Math.abs(expected - denoised![i]!) * 127.5);
      if (Math.abs(denoised![i]! - mean![i]!) > 0.1 && Math.abs(denoised![i]! - noisy![i]!) > 0.1) moved++;
    }
    assert.ok(worst <= 1 + 1e-3, `worst difference ${worst} levels`);
    assert.ok(moved > 100, `${moved} values are neither the mean nor the input`);

    // The same images and seed through the evaluation's task: the same numbers, bit for bit.
    const { split, indices } = await selectImages(config, { split: 'test', n: 3, seed: 0 });
    const test = await readImages(config, split, indices).finally(() => split.close());
    const m = await denoisingTask(model, val, test, spec, 0, 32);
    assert.deepEqual(
      [d['psnr_noisy_db'], d['ssim_noisy'], d['psnr_mean_db'], d['ssim_mean'], d['psnr_combined_db'], d['ssim_combined'], d['decoder_rms']],
      [
        m.noisy.psnr,
        m.noisy.ssim,
        m.model.psnr,
        m.model.ssim,
        m.model_posterior!.psnr,
        m.model_posterior!.ssim,
        m.model_posterior!.decoder_rms,
      ],
    );
    assert.deepEqual(
      [
        d['psnr_gaussian_blur_db'],
        d['ssim_gaussian_blur'],
        d['gaussian_blur_sigma'],
        d['psnr_median_db'],
        d['ssim_median'],
        d['median_window'],
      ],
      [m.gaussian_blur.psnr, m.gaussian_blur.ssim, m.gaussian_blur.sigma, m.median.psnr, m.median.ssim, m.median.window],
    );
    assert.deepEqual([d['psnr_model_on_clean_db'], d['ssim_model_on_clean']], [m.model_on_clean.psnr, m.model_on_clean.ssim]);
  } finally {
    model.dispose();
  }
});

test('denoise takes salt-and-pepper and Poisson noise; a bad --noise, or combined for salt-and-pepper, is one usage line', async () => {
  const sp = await medvae([
    'denoise',
    '--run',
    run,
    '--n',
    '2',
    '--noise',
    'saltpepper:0.1',
    '--backend',
    'wasm',
    '--json',
    '--out',
    join(dir, 'sp.npz'),
  ]);
  assert.equal(sp.status, 0, sp.stderr);
  const s = JSON.parse(sp.stdout.trim()) as Record<string, unknown>;
  assert.equal(s['denoised'], 'mean');
  assert.equal(s['psnr_denoised_db'], s['psnr_mean_db']);
  assert.equal(s['psnr_combined_db'], null, 'no variance to combine by');
  assert.ok(Number.isFinite(s['psnr_noisy_db']) && Number.isFinite(s['psnr_median_db']));
  assert.match(sp.stderr, /denoised = the decoder mean: the default for saltpepper:0\.1, since salt-and-pepper noise replaces values/);
  // Salt and pepper: each pixel of the written noisy images is its clean value, black or white.
  const [clean, noisy] = await Promise.all(['test_originals', 'test_noisy'].map((name) => npzValues(join(dir, 'sp.npz'), name)));
  let flipped = 0;
  for (let p = 0; p < noisy!.length; p += 3) {
    const px = [0, 1, 2].map((c) => noisy![p + c]!);
    if (px.every((v, c) => v === clean![p + c])) continue;
    assert.ok(
      px.every((v) => v === px[0] && Math.abs(v) === 1),
      `pixel ${p / 3}: ${px}`,
    );
    flipped++;
  }
  assert.ok(flipped > 0.05 * 2 * 32 * 32 && flipped < 0.15 * 2 * 32 * 32, `${flipped} pixels replaced`);

  const poisson = await medvae([
    'denoise',
    '--run',
    run,
    '--n',
    '2',
    '--noise',
    'poisson:30',
    '--backend',
    'wasm',
    '--json',
    '--out',
    join(dir, 'p.png'),
  ]);
  assert.equal(poisson.status, 0, poisson.stderr);
  assert.equal((JSON.parse(poisson.stdout.trim()) as { denoised: string }).denoised, 'combined');

  for (const [args, pattern] of [
    [['--noise', 'salt'], /^error: --noise salt: expected gaussian:SIGMA .*saltpepper:P .*poisson:PEAK .*on the \[0, 1\] scale$/],
    [['--noise', 'saltpepper:2'], /^error: --noise saltpepper:2: the salt-and-pepper probability must be below 1$/],
    [
      ['--noise', 'saltpepper:0.1', '--denoised', 'combined'],
      /^error: --denoised combined: saltpepper:0\.1 has no variance .*give --denoised mean or auto$/,
    ],
  ] as const) {
    const r = await medvae(['denoise', '--run', run, ...args, '--backend', 'wasm', '--out', join(dir, 'bad.png')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr.trim(), pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(join(dir, 'bad.png')));
  }
});
