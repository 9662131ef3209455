// End to end through the command line on a dataset the test makes: the commands run in this process
// through their commander wiring (medvaeInProcess), and in spawned `medvae` processes where the
// process is what is tested (signals, exit codes with the exact output, a backend out of memory).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { tf } from '../../src/util/tf.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { loadRun, latestCheckpoint } from '../../src/run/checkpoint.ts';
import { openDataset } from '../../src/data/open.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { BIN, medvaeInProcess as medvae, medvaeProcess, type CliResult } from '../helpers/medvae-cli.ts';

const dir = tempDir('medvae-cli-');
const data = join(dir, 'tiny.npz');
// 48 training images at batch 16: 3 steps an epoch.
writeTinyNpz(data, { train: 48, val: 8, test: 8 });
const base = ['train', '--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain'];

async function size(png: string): Promise<[number, number]> {
  const meta = await sharp(png).metadata();
  return [meta.width ?? 0, meta.height ?? 0];
}

function digest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Hashes of every file of a checkpoint that holds numbers (weights and optimizer moments). */
function checkpointDigests(ckpt: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const net of ['encoder', 'decoder']) out[`${net}/weights.bin`] = digest(join(ckpt, net, 'weights.bin'));
  for (const f of readdirSync(ckpt).filter((f) => f.endsWith('.bin'))) out[f] = digest(join(ckpt, f));
  return out;
}

/** 2 epochs straight; 1 epoch, then resumed for the second; a conditional run of 2 steps. */
const straight = join(dir, 'straight');
const halves = join(dir, 'halves');
const cvae = join(dir, 'cvae');
/** What resuming the halves printed. */
let resumed: CliResult;

// The runs several tests read, trained once whichever tests run.
before(async () => {
  const r1 = await medvae([...base, '--epochs', '2', '--out', straight]);
  assert.equal(r1.status, 0, r1.stderr);
  const r2 = await medvae([...base, '--epochs', '1', '--out', halves]);
  assert.equal(r2.status, 0, r2.stderr);
  resumed = await medvae(['train', '--resume', halves, '--epochs', '2', '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const r4 = await medvae([...base, '--set', 'model.name=cvae', '--max-steps', '2', '--out', cvae]);
  assert.equal(r4.status, 0, r4.stderr);
});

test('2 epochs straight equal 1 epoch, stop, resume 1 epoch: bit for bit', () => {
  assert.match(resumed.stderr, /resumed from .*step-0000003: epoch 2, step 3/);
  const a = latestCheckpoint(join(straight, 'checkpoints'))!;
  const b = latestCheckpoint(join(halves, 'checkpoints'))!;
  assert.ok(a.endsWith('step-0000006') && b.endsWith('step-0000006'), `${a} ${b}`);
  assert.deepEqual(checkpointDigests(b), checkpointDigests(a));
});

test('a run writes files that parse: config, metrics.jsonl, PNG grids, SVG and PNG loss plots', async () => {
  const run = straight;
  const lines = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; terms: Record<string, number>; means?: Record<string, number> });
  const steps = lines.filter((l) => l.kind === 'step');
  assert.deepEqual(
    steps.map((l) => l.step),
    [1, 2, 3, 4, 5, 6],
  );
  for (const s of steps)
    for (const k of ['loss', 'reconstruction', 'kld']) assert.ok(Number.isFinite(s.terms[k]), `${k} at step ${s.step}`);
  const epochs = lines.filter((l) => l.kind === 'epoch');
  assert.equal(epochs.length, 2);
  // The epoch mean is the mean of that epoch's step values.
  const mean = (steps[0]!.terms.loss! + steps[1]!.terms.loss! + steps[2]!.terms.loss!) / 3;
  assert.ok(Math.abs(epochs[0]!.means!.loss! - mean) < 1e-9);
  for (const f of ['samples/epoch-0001.png', 'samples/epoch-0002.png', 'reconstructions/epoch-0002.png', 'plots/loss.png']) {
    const meta = await sharp(join(run, f)).metadata();
    assert.equal(meta.format, 'png', f);
    assert.ok((meta.width ?? 0) > 32 && (meta.height ?? 0) > 32, f);
  }
  // 16 samples of 32 px in a 4 x 4 grid with 2 px padding.
  const grid = await sharp(join(run, 'samples/epoch-0002.png')).metadata();
  assert.equal(grid.width, 4 * 34 + 2);
  // 8 originals above 8 reconstructions.
  const rec = await sharp(join(run, 'reconstructions/epoch-0002.png')).metadata();
  assert.deepEqual([rec.width, rec.height], [8 * 34 + 2, 2 * 34 + 2]);
  assert.match(readFileSync(join(run, 'plots/kld.svg'), 'utf8'), /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
});

test('a checkpoint loads back, also through tf.loadLayersModel, and reproduces the same reconstruction', async () => {
  const run = straight;
  const { model } = await loadRun(run);
  const ckpt = latestCheckpoint(join(run, 'checkpoints'))!;
  const load = (net: string): Promise<tf.LayersModel> => {
    const json = JSON.parse(readFileSync(join(ckpt, net, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    const weights = readFileSync(join(ckpt, net, 'weights.bin'));
    return tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0]!.weights,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
  };
  const encoder = await load('encoder');
  const decoder = await load('decoder');
  const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
  const ours = model.reconstruct(x);
  const outs = encoder.predict(x) as tf.Tensor[];
  const mu = Array.isArray(outs) ? outs[0]! : outs;
  const theirs = decoder.predict(mu) as tf.Tensor;
  const diff = tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]!;
  assert.ok(diff < 1e-5, `max difference ${diff}`);
  const again = (await loadRun(run)).model.reconstruct(x);
  assert.equal(tf.max(tf.abs(tf.sub(ours, again))).dataSync()[0], 0);
});

test('medvae sample writes an npz in the MedMNIST layout that the project reader opens', async () => {
  const out = join(dir, 'synthetic.npz');
  const r = await medvae(['sample', '--run', straight, '--n', '10', '--batch', '4', '--out', out, '--backend', 'wasm']);
  assert.equal(r.status, 0, r.stderr);
  const split = await openDataset({ format: 'medmnist', path: out }, 'train');
  assert.equal(split.length, 10);
  const [first] = await split.read([0]);
  assert.ok(first);
  await split.close();
  const dirOut = join(dir, 'synthetic-png');
  assert.equal((await medvae(['sample', '--run', straight, '--n', '3', '--out', dirOut, '--backend', 'wasm'])).status, 0);
  assert.equal(readdirSync(dirOut).filter((f) => f.endsWith('.png')).length, 3);
});

test('bad config and missing dataset fail with one clear line, no stack trace', async () => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'train:\n  lr: fast\n');
  // A real process: exit 1, and that line is all it printed on stderr.
  const r = medvaeProcess(['train', '--config', bad]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `error: ${bad}: 'train.lr' must be a number, got "fast"`);
  const missing = await medvae([...base, '--data', join(dir, 'nope.npz'), '--out', join(dir, 'nope-run')]);
  assert.equal(missing.status, 2, 'a --data path that does not exist is a usage mistake');
  const last = missing.stderr.trim().split('\n').at(-1)!;
  assert.match(last, /^error: --data .*nope\.npz does not exist; check the path$/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace without --debug');
});

test('a diverging run stops with advice and leaves the last good checkpoint intact', async () => {
  const run = join(dir, 'diverging');
  cpSync(halves, run, { recursive: true });
  const ckpt = latestCheckpoint(join(run, 'checkpoints'))!;
  const intact = checkpointDigests(ckpt);
  const r = await medvae([
    'train',
    '--resume',
    run,
    '--epochs',
    '4',
    '--set',
    'train.lr=1e12',
    '--set',
    'train.scheduler_gamma=1',
    '--backend',
    'wasm',
    '--log-format',
    'plain',
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /error: training diverged at step \d+ .*Lower the learning rate.*last good checkpoint is .*step-0000006/);
  assert.equal(latestCheckpoint(join(run, 'checkpoints')), ckpt);
  assert.deepEqual(checkpointDigests(ckpt), intact);
});

// SIGINT (Ctrl-C, exit 130) is tested the same way, with the --resume command it prints, in
// cli-errors.test.ts ('Ctrl-C finishes the step: ...'): one process per signal is enough.
for (const [signal, exitCode] of [['SIGTERM', 143]] as const) {
  test(`${signal} finishes the step, saves a checkpoint and exits ${exitCode}`, async () => {
    const run = join(dir, `interrupted-${signal}`);
    const child = spawn(process.execPath, [BIN, ...base, '--epochs', '1000', '--out', run], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const sawSteps = new Promise<void>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/step 2\/3/.test(stderr)) resolve();
      });
    });
    await sawSteps;
    child.kill(signal);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, exitCode, stderr);
    assert.match(stderr, /interrupted: finishing this step/);
    const ckpt = latestCheckpoint(join(run, 'checkpoints'));
    assert.ok(ckpt && existsSync(join(ckpt, 'state.json')), stderr);
    const state = JSON.parse(readFileSync(join(ckpt, 'state.json'), 'utf8')) as { step: number };
    assert.ok(state.step >= 2);
  });
}

test('reconstruct, denoise and interpolate write grids of the promised shape; denoise reports PSNR before and after', async () => {
  const run = straight;
  const rec = join(dir, 'rec.png');
  assert.equal((await medvae(['reconstruct', '--run', run, '--n', '4', '--out', rec, '--backend', 'wasm'])).status, 0);
  // Tiles of 32 px with 2 px padding, and a strip of row labels on the left.
  const [recWidth, recHeight] = await size(rec);
  assert.ok(recWidth > 4 * 34 + 2 && recHeight === 2 * 34 + 2, `${recWidth} x ${recHeight}`);
  const den = join(dir, 'den.png');
  const r = await medvae(['denoise', '--run', run, '--n', '4', '--noise', 'gaussian:0.2', '--out', den, '--backend', 'wasm', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim()) as { images: number; psnr_noisy_db: number; psnr_denoised_db: number };
  assert.equal(report.images, 4);
  // Gaussian noise of sigma 0.2 on [0,1] (0.4 on [-1,1], before clipping) gives PSNR near
  // 10 log10(4 / 0.16) = 14 dB; clipping at the range ends can only raise it.
  assert.ok(report.psnr_noisy_db > 13.5 && report.psnr_noisy_db < 17, `noisy PSNR ${report.psnr_noisy_db}`);
  assert.ok(Number.isFinite(report.psnr_denoised_db));
  const [denWidth, denHeight] = await size(den);
  assert.ok(denWidth > 4 * 34 + 2 && denHeight === 3 * 34 + 2, `${denWidth} x ${denHeight}`);
  const interp = join(dir, 'interp.png');
  assert.equal(
    (await medvae(['interpolate', '--run', run, '--pairs', '2', '--steps', '5', '--out', interp, '--backend', 'wasm'])).status,
    0,
  );
  // Row labels on the left, a title line on top.
  const [interpWidth, interpHeight] = await size(interp);
  assert.ok(interpWidth > 5 * 34 + 2 && interpHeight > 2 * 34 + 2, `${interpWidth} x ${interpHeight}`);
  assert.match((await medvae(['denoise', '--run', run, '--noise', 'salt', '--out', den])).stderr, /--noise salt: expected gaussian:SIGMA/);
});

/** The first image of an npz's training split, as stored. */
async function split0(file: string): Promise<unknown> {
  const split = await openDataset({ format: 'medmnist', path: file }, 'train');
  try {
    return (await split.read([0]))[0];
  } finally {
    await split.close();
  }
}

test('a conditional run samples the class asked for, into class folders or an npz with its labels, and refuses a class it does not have', async () => {
  const run = cvae;
  const out = join(dir, 'cvae-png');
  assert.equal((await medvae(['sample', '--run', run, '--n', '3', '--label', '2', '--out', out, '--backend', 'wasm'])).status, 0);
  assert.deepEqual(readdirSync(out), ['2']);
  assert.equal(readdirSync(join(out, '2')).length, 3);
  const npz = join(dir, 'cvae.npz');
  assert.equal((await medvae(['sample', '--run', run, '--n', '10', '--latent', 'prior', '--out', npz, '--backend', 'wasm'])).status, 0);
  const split = await openDataset({ format: 'medmnist', path: npz }, 'train');
  // Classes in turn: 0 1 2 3 4 0 1 2 3 4, stored as class indices as in RetinaMNIST.
  assert.deepEqual(
    (await split.labels()).map((row) => row[0]),
    [0, 1, 2, 3, 4, 0, 1, 2, 3, 4],
  );
  await split.close();
  // Latents from the checkpoint's class-wise Gaussian ('fitted', its old name): the same layout and labels.
  const fitted = join(dir, 'cvae-fitted.npz');
  const f = await medvae(['sample', '--run', run, '--n', '10', '--latent', 'fitted', '--out', fitted, '--backend', 'wasm']);
  assert.equal(f.status, 0, f.stderr);
  assert.match(f.stderr, /^sampler: gaussian \(--latent fitted, the old name of gaussian\)$/m);
  const fittedSplit = await openDataset({ format: 'medmnist', path: fitted }, 'train');
  assert.deepEqual(
    (await fittedSplit.labels()).map((row) => row[0]),
    [0, 1, 2, 3, 4, 0, 1, 2, 3, 4],
  );
  const [prior0, fitted0] = [await split0(npz), (await fittedSplit.read([0]))[0]!];
  assert.notDeepEqual(prior0, fitted0, 'other latents, other images');
  await fittedSplit.close();
  const bad = await medvae(['sample', '--run', run, '--n', '3', '--label', '7', '--out', out]);
  assert.equal(bad.status, 2, 'a bad flag value is a usage error');
  assert.match(bad.stderr, /--label must be an integer in 0\.\.4, got 7/);
});

test('--log-format json writes one JSON object per line', async () => {
  const r = await medvae([
    ...base.filter((a) => a !== 'plain' && a !== '--log-format'),
    '--log-format',
    'json',
    '--max-steps',
    '2',
    '--out',
    join(dir, 'json-log'),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; event?: string; step?: number; terms?: Record<string, number> });
  assert.ok(lines.every((l) => l.level === 'info'));
  const steps = lines.filter((l) => l.event === 'step');
  assert.ok(steps.length >= 1 && steps.every((l) => Number.isFinite(l.terms?.loss)));
});

test('a 256x256 step too big for the wasm backend ends in one clear line, not a bare trap or Aborted()', () => {
  // 64 images of 256x256 in one pass, written at that size (no resizing) and read one batch
  // ahead (data.prefetch=1). The Vanilla VAE's own layers need more than the 4 GB wasm heap (32
  // fit, at 3.4 GB RSS), after minutes of computing; a first layer of 1,100 channels asks for 4.6 GB
  // for its output alone, so the step fails at its first allocation, before computing anything. A
  // real process: a wasm abort could end it.
  const big = join(dir, 'big.npz');
  writeTinyNpz(big, { train: 64, val: 2, test: 2, size: 256 });
  const r = medvaeProcess(
    [
      'train',
      '--data',
      big,
      '--set',
      'model.image_size=256',
      '--set',
      'model.hidden_dims=[1100, 8, 8, 8, 8, 8, 8]',
      '--set',
      'train.batch_size=64',
      '--set',
      'train.micro_batch=64',
      '--set',
      'data.prefetch=1',
      '--max-steps',
      '1',
      '--backend',
      'wasm',
      '--log-format',
      'plain',
      '--metrics-port',
      '0',
      '--out',
      join(dir, 'too-big'),
    ],
    { timeoutMs: 300_000 },
  );
  assert.equal(r.status, 1);
  const last = r.stderr.trim().split('\n').at(-1)!;
  assert.match(
    last,
    /^error: wasm backend (failed|ran out of its 4 GB memory) during training step 1 \(micro-batch of 64 at 256x256\).*lower train\.micro_batch/,
  );
});

test('an image folder with a corrupt file: skipped with a warning, or fatal with --strict naming the file', async () => {
  const folder = join(dir, 'folder');
  mkdirSync(folder);
  // 15 good images and the broken one: exactly one batch of 16, so every epoch reads the broken file.
  for (let i = 0; i < 15; i++) {
    const px = Buffer.alloc(32 * 32 * 3, (i * 13) % 256);
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(folder, `img${String(i).padStart(2, '0')}.png`));
  }
  writeFileSync(join(folder, 'broken.png'), Buffer.from('not a png at all'));
  const common = [
    'train',
    '--config',
    'configs/smoke.yaml',
    '--data',
    folder,
    '--set',
    'data.format=folder',
    '--max-steps',
    '2',
    '--backend',
    'wasm',
    '--log-format',
    'plain',
  ];
  const lenient = await medvae([...common, '--out', join(dir, 'folder-run')]);
  assert.equal(lenient.status, 0, lenient.stderr);
  assert.match(lenient.stderr, /broken\.png/);
  const strict = await medvae([...common, '--strict', '--out', join(dir, 'folder-strict')]);
  assert.equal(strict.status, 1);
  assert.match(strict.stderr.trim().split('\n').at(-1)!, /^error: .*broken\.png/);
});

test('a PyTorch-VAE config trains, and each of its keys that does nothing here is named once in the output', async () => {
  const file = join(dir, 'pytorch-vae.yaml');
  writeFileSync(
    file,
    [
      'model_params:',
      "  name: 'VanillaVAE'",
      '  in_channels: 3',
      '  latent_dim: 4',
      'data_params:',
      `  data_path: "${data}"`,
      '  train_batch_size: 16',
      '  val_batch_size: 16',
      '  patch_size: 32',
      '  num_workers: 4',
      'exp_params:',
      '  LR: 0.005',
      '  kld_weight: 0.00025',
      '  manual_seed: 7',
      'trainer_params:',
      '  gpus: [1]',
      '  max_epochs: 1',
    ].join('\n'),
  );
  const r = await medvae([
    'train',
    '--config',
    file,
    '--set',
    'model.hidden_dims=[4, 8]',
    '--backend',
    'wasm',
    '--log-format',
    'plain',
    '--max-steps',
    '1',
    '--out',
    join(dir, 'pytorch-vae'),
  ]);
  assert.equal(r.status, 0, r.stderr);
  for (const key of ['data_params.val_batch_size', 'data_params.num_workers', 'trainer_params.gpus']) {
    assert.equal(r.stderr.split('\n').filter((l) => l.includes(`${key} ignored`)).length, 1, key);
  }
});
