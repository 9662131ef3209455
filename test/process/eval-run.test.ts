// `medvae eval` on real runs: a tiny VAE and CVAE trained by the real `medvae train` on a dataset
// the test writes, trained and evaluated through the commander wiring in this process (what is
// tested is eval, not a process), eval.json parsed back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerEvalCommands } from '../../src/cli/eval-command.ts';
import type { EvalFile } from '../../src/eval/eval-file.ts';
import { formatNumber } from '../../src/eval/eval-file.ts';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { medvaeInProcess } from '../helpers/medvae-cli.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import { createLoader } from '../../src/data/loader.ts';
import { openDataset } from '../../src/data/open.ts';
import { readLabelledImages } from '../../src/eval/images.ts';
import { featureNetData, heldOutIndices, useTrainedTemperature } from '../../src/eval/run-eval.ts';
import { initBackend } from '../../src/backend/index.ts';
import { createModel } from '../../src/models/index.ts';
import { JointVae } from '../../src/models/joint_vae.ts';

const dir = mkdtempSync(join(tmpdir(), 'medvae-eval-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'tiny.npz');
const vaeRun = join(dir, 'runs', 'vae');
const cvaeRun = join(dir, 'runs', 'cvae');
// Another model, annealed every step, with other augmentation, optimiser and seed, on the same data.
const jointRun = join(dir, 'runs', 'joint-augmented');
const JOINT = [
  ...['--set', 'model.name=joint_vae', '--set', 'model.anneal_steps=1', '--set', 'model.anneal_rate=0.2'],
  ...['--set', 'data.random_flip=true', '--set', 'data.random_rot90=true', '--set', 'train.lr=0.0003', '--set', 'train.seed=77'],
];

/** `medvae train` through its commander wiring in this process (one process fewer to start each); resolves once it has succeeded. */
async function train(out: string, extra: string[]): Promise<void> {
  const r = await medvaeInProcess(['train', ...smokeFlags(data), '--max-steps', '3', '--out', out, ...extra]);
  assert.equal(r.status, 0, `medvae train exited ${r.status}: ${r.stderr}`);
}

/** Runs `medvae eval|report ...` in-process through the real commander wiring; returns stdout. */
async function medvae(args: string[]): Promise<string> {
  const program = new Command('medvae').exitOverride();
  const chunks: string[] = [];
  registerEvalCommands(program, { write: (text: string) => chunks.push(text) });
  await program.parseAsync(['node', 'medvae', ...args]);
  const failed = process.exitCode;
  process.exitCode = 0;
  assert.ok(!failed, `medvae ${args.join(' ')} failed`);
  return chunks.join('');
}

const evalArgs = (run: string, seed: string): string[] => [
  'eval',
  '--run',
  run,
  '--n',
  '16',
  '--seed',
  seed,
  '--backend',
  'wasm',
  // One classifier step and the fewest utility seeds: these tests check the wiring and the files, not the scores.
  '--feature-steps',
  '1',
  '--utility-seeds',
  '2',
];

const readEval = (run: string): EvalFile => JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as EvalFile;

/** The first eval of the VAE, the CVAE and the JointVAE run (seed 4), which several tests read. */
let vaeFirst: { out: string; file: EvalFile };
let cvaeFirst: EvalFile;
let jointFirst: { out: string; file: EvalFile };

// The three runs train one after another in this process; then each is evaluated once, so that
// every test finds its eval.json whatever order the tests run in.
before(async () => {
  writeTinyNpz(data, { train: 48, val: 8, test: 20, classes: 3 });
  await train(vaeRun, []);
  await train(cvaeRun, ['--set', 'model.name=cvae']);
  await train(jointRun, JOINT);
  const out = await medvae(evalArgs(vaeRun, '4'));
  vaeFirst = { out, file: readEval(vaeRun) };
  await medvae(evalArgs(cvaeRun, '4'));
  cvaeFirst = readEval(cvaeRun);
  jointFirst = { out: await medvae(evalArgs(jointRun, '4')), file: readEval(jointRun) };
});

test('the feature-net key takes only what defines the data from a run config', () => {
  const base = DEFAULT_CONFIG.data;
  const key = featureNetData(base, 'abc');
  assert.deepEqual(key, { datasetHash: 'abc', split: 'train', resize: 'bilinear' });
  for (const other of [
    { ...base, random_flip: true, random_rot90: true },
    { ...base, threads: 4, prefetch: 8, strict: true, drop_last: false },
  ]) {
    assert.deepEqual(featureNetData(other, 'abc'), key);
  }
  assert.notDeepEqual(featureNetData({ ...base, split: 'val' }, 'abc'), key);
  assert.notDeepEqual(featureNetData({ ...base, resize: 'area' }, 'abc'), key);
  assert.notDeepEqual(featureNetData(base, 'abd'), key);
});

test('held-out images: a seeded subset of the split, the same for one seed, another for another', () => {
  const a = heldOutIndices(400, 100, 0);
  assert.equal(a.length, 100);
  assert.equal(new Set(a).size, 100, 'distinct');
  assert.ok(
    a.every((i, k) => Number.isInteger(i) && i >= 0 && i < 400 && (k === 0 || a[k - 1] < i)),
    'ascending indices into the split',
  );
  assert.deepEqual(heldOutIndices(400, 100, 0), a);
  assert.notDeepEqual(heldOutIndices(400, 100, 1), a);
  // Not the first n: spread over the whole split.
  assert.ok(a[a.length - 1] >= 100, `last index ${a[a.length - 1]}`);
  assert.deepEqual(
    heldOutIndices(20, 50, 3),
    Array.from({ length: 20 }, (_, i) => i),
    'n >= split size: all of it',
  );
});

test('eval reads the same label rows (one-hot, same class order) and pixels as the training loader', async () => {
  const split = await openDataset({ format: 'medmnist', path: data }, 'train');
  const loader = createLoader({
    split,
    imageSize: 32,
    channels: 3,
    resize: 'bilinear',
    augment: { flip: false, rot90: false },
    globalBatch: 16,
    shard: { seed: 3, rank: 0, worldSize: 1 },
    dropLast: true,
    threads: 0,
    prefetch: 1,
    strict: true,
  });
  try {
    for await (const batch of loader.batches(0)) {
      const evalView = await readLabelledImages(split, Array.from(batch.indices), 32, 3, 'bilinear');
      assert.equal(evalView.labelWidth, batch.labelWidth);
      assert.deepEqual(
        Array.from(evalView.labels),
        Array.from(batch.labels),
        'the rows CVAE training conditioned on are the rows eval conditions on and scores with',
      );
      assert.deepEqual(Array.from(evalView.images), Array.from(batch.images));
      const raw = await split.labels();
      batch.indices.forEach((idx, k) =>
        assert.equal(evalView.labels[k * 3 + raw[idx][0]], 1, `class ${raw[idx][0]} is column ${raw[idx][0]}`),
      );
      break;
    }
  } finally {
    await loader.close();
    await split.close();
  }
});

test('a JointVAE is evaluated at the temperature of its last training step, not the initial one', async () => {
  await initBackend('wasm');
  const config = {
    ...DEFAULT_CONFIG.model,
    name: 'joint_vae' as const,
    image_size: 32,
    hidden_dims: [8, 16],
    latent_dim: 4,
    anneal_steps: 10,
    anneal_rate: 0.05,
    min_temperature: 0.05,
  };
  const model = createModel(config, 1);
  try {
    assert.ok(model instanceof JointVae);
    assert.equal(model.temperature, 0.5);
    // 25 steps done: the last one was step 24, annealed in stages of 10 -> exp(-0.05 * 20).
    assert.equal(useTrainedTemperature(model, 25), 0.5 * Math.exp(-1));
    assert.equal(model.temperature, 0.5 * Math.exp(-1));
    assert.equal(useTrainedTemperature(model, 0), 0.5, 'an untrained checkpoint keeps the initial temperature');
  } finally {
    model.dispose();
  }
  const vae = createModel({ ...config, name: 'vae' }, 1);
  assert.equal(useTrainedTemperature(vae, 25), null);
  vae.dispose();
});

test('eval writes eval.json, prints its numbers, and gives the same numbers twice', async () => {
  const { out, file } = vaeFirst;
  assert.equal(file.format, 'medvae-eval');
  assert.equal(file.model.name, 'vae');
  assert.equal(file.model.step, 3);
  assert.equal(file.split, 'test');
  // 16 of the 20 test images, 16 samples.
  assert.equal(file.metrics.reconstruction.n, 16);
  assert.equal(file.metrics.sample_quality.n_generated, 16);
  assert.equal(file.metrics.tstr, null);
  const r = file.metrics.reconstruction;
  assert.ok(r.mse > 0 && r.mse < 4, `mse ${r.mse}`);
  assert.ok(Math.abs(r.psnr - 10 * Math.log10(4 / r.mse)) < 1.5, 'psnr is near that of the mean MSE (mean of logs <= log of mean)');
  assert.ok(r.psnr >= 10 * Math.log10(4 / r.mse) - 1e-9, 'Jensen: mean per-image PSNR >= PSNR of mean MSE');
  assert.ok(r.ssim > -1 && r.ssim <= 1 && r.ms_ssim > 0 && r.ms_ssim <= 1);
  assert.ok(Number.isFinite(file.metrics.sample_quality.frechet_distance));
  assert.match(out, new RegExp(`PSNR \\(dB\\)\\s+${formatNumber(r.psnr).replace('.', '\\.')}`));
  // The feature net was cached beside the runs.
  const cache = join(dir, 'runs', '.feature-nets');
  assert.deepEqual(readdirSync(cache), [file.metrics.sample_quality.feature_net.id]);

  // Baselines next to the numbers; n = 16 images per side is below the KID subset size: no error bar.
  assert.ok(r.baselines.train_mean.psnr > r.baselines.constant_grey.psnr, 'the mean image beats mid-grey');
  assert.equal(file.metrics.sample_quality.kernel_distance.std_error, null);
  assert.ok(Number.isFinite(file.metrics.sample_quality.reference_kernel_distance.mean));
  assert.match(out, /grey [\d.]+, train mean [\d.]+/);
  assert.equal(file.model.temperature, null);
  // Samples drawn from the fitted aggregate posterior too, fitted on the whole training split.
  const fitted = file.metrics.fitted_posterior;
  assert.ok(fitted);
  assert.equal(fitted.n_fit, 48);
  assert.ok(Number.isFinite(fitted.sample_quality.frechet_distance));
  assert.notEqual(fitted.sample_quality.frechet_distance, file.metrics.sample_quality.frechet_distance);
  assert.match(out, /fitted latent: samples\s+Frechet feature distance/);
  // The decoder's reference: as many training images' reconstructions as held-out images, printed beside the samples.
  const limit = file.metrics.training_reconstructions;
  assert.ok(limit);
  assert.equal(limit.n, 16);
  assert.ok(Number.isFinite(limit.sample_quality.frechet_distance));
  assert.match(out, /training reconstructions\s+Frechet feature distance/);

  await medvae(evalArgs(vaeRun, '4'));
  const again = readEval(vaeRun);
  assert.deepEqual(again.metrics, file.metrics);
  assert.deepEqual(again.heldout_indices, file.heldout_indices);
  assert.notEqual(again.meta.created_at, undefined);
});

test('eval scores the held-out images its seed chose, and eval.json lists them', async () => {
  await medvae(evalArgs(vaeRun, '5'));
  const five = readEval(vaeRun);
  // The seed-4 eval of before(), read before this test overwrote eval.json.
  const four = vaeFirst.file;
  assert.deepEqual(four.heldout_indices, heldOutIndices(20, 16, 4));
  assert.deepEqual(five.heldout_indices, heldOutIndices(20, 16, 5));
  assert.notDeepEqual(four.heldout_indices, five.heldout_indices);
  // The mid-grey baseline's MSE is the mean square of exactly those images, read independently here.
  const split = await openDataset({ format: 'medmnist', path: data }, 'test');
  try {
    const images = await readLabelledImages(split, four.heldout_indices, 32, 3, 'bilinear');
    const meanSquare = images.images.reduce((s, v) => s + v * v, 0) / images.images.length;
    assert.ok(
      Math.abs(four.metrics.reconstruction.baselines.constant_grey.mse - meanSquare) < 1e-5,
      `${four.metrics.reconstruction.baselines.constant_grey.mse} vs ${meanSquare}`,
    );
  } finally {
    await split.close();
  }
});

test('eval of a conditional run reports TSTR next to TRTR', () => {
  const file = cvaeFirst;
  assert.equal(file.model.name, 'cvae');
  assert.ok(file.metrics.tstr);
  assert.equal(file.metrics.tstr.label_kind, 'class');
  assert.equal(file.metrics.tstr.n_train, 16);
  const t = file.metrics.tstr;
  for (const s of [t.tstr, t.trtr, t.conditioning, t.augmentation.real_only, t.augmentation.real_plus_synthetic])
    assert.ok(s.accuracy >= 0 && s.accuracy <= 1);
  assert.ok(file.metrics.fitted_posterior?.tstr, 'TSTR of class-wise fitted draws as well');
  // The whole real training split (48), alone and with the 16 synthetic images.
  assert.deepEqual([t.augmentation.n_real, t.augmentation.n_synthetic], [48, 16]);
  assert.ok(t.majority_accuracy > 0 && t.majority_accuracy < 1);
  // Same dataset file, seed and recipe: the same feature net as the VAE's.
  assert.equal(file.metrics.sample_quality.feature_net.id, vaeFirst.file.metrics.sample_quality.feature_net.id);
});

test('runs with other model, augmentation, optimiser and seed on the same data share one feature net', () => {
  assert.equal(jointFirst.file.metrics.sample_quality.feature_net.id, vaeFirst.file.metrics.sample_quality.feature_net.id);
});

test('a JointVAE run is evaluated at its annealed temperature', () => {
  const { out, file } = jointFirst;
  assert.equal(file.model.step, 3);
  // Three steps (0, 1, 2) annealed every step at rate 0.2 from 0.5: the last one ran at 0.5 exp(-0.4).
  assert.equal(file.model.temperature, 0.5 * Math.exp(-0.4));
  assert.match(out, new RegExp(`temperature ${formatNumber(0.5 * Math.exp(-0.4)).replace('.', '\\.')}`));
});

test('report puts both runs side by side with their eval numbers and the real grids inline', async () => {
  const out = await medvae(['report', '--run', vaeRun, '--compare', cvaeRun]);
  const path = join(vaeRun, 'report.html');
  assert.equal(out, `wrote ${path}\n`);
  const html = readFileSync(path, 'utf8');
  for (const run of [vaeRun, cvaeRun]) {
    const file = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as EvalFile;
    assert.ok(html.includes(`>${formatNumber(file.metrics.reconstruction.psnr)}<`), `PSNR of ${run}`);
  }
  // Samples and reconstructions of both runs, both in the side-by-side row, and each run's closest
  // sample / training pairs of prior and fitted-latent draws.
  assert.equal(html.match(/src="data:image\/png;base64,/g)?.length, 6 + 2 * 2);
  assert.equal(html.match(/the 8 samples closest to a training image/g)?.length, 2 * 2 * 2, 'alt text and caption of each picture');
  // Baselines beside the numbers, in the runs' tables and the comparison.
  const vae = readEval(vaeRun);
  assert.ok(
    html.includes(
      `grey ${formatNumber(vae.metrics.reconstruction.baselines.constant_grey.psnr)}, train mean ${formatNumber(vae.metrics.reconstruction.baselines.train_mean.psnr)}`,
    ),
  );
  assert.ok(html.includes(`real vs real ${formatNumber(vae.metrics.sample_quality.reference_frechet_distance)}`));
  assert.match(html, /accuracy \(real \+ synthetic -&gt; real\)/);
  assert.ok(!/(src|href)="(https?:|file:|\/)/.test(html), 'nothing outside the file is referenced');
});

test('eval of a folder that is not a run fails with a message naming it', async () => {
  const program = new Command('medvae').exitOverride();
  registerEvalCommands(program);
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    errors.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'medvae', 'eval', '--run', join(dir, 'nope')]);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(process.exitCode, 1);
  process.exitCode = 0;
  assert.match(errors.join(''), /nope does not exist; give a run directory/);
  assert.equal(existsSync(join(dir, 'nope', 'eval.json')), false);
});
