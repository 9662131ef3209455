// medvae-dist end to end: real worker processes, real TCP ring, real kills.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { startProcess, workersOf } from '../helpers/dist-process.ts';
import { latestCheckpoint, readState } from '../../src/run/checkpoint.ts';
import { checkpointWeights, maxAbsDiff } from '../helpers/checkpoint-weights.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createModel } from '../../src/models/index.ts';
import { tempDir } from '../helpers/temp-dir.ts';

await tf.setBackend('cpu');
const ROOT = join(import.meta.dirname, '..', '..');
const TRAIN = join(ROOT, 'bin', 'medvae.js');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const dir = tempDir('medvae-dist-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 48, val: 8, test: 8, size: 16 });
const common = ['--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain'];
// 16x16 images and two narrow conv layers: what these tests prove does not depend on the model's size,
// and a step costs little next to a process's start.
const MODEL = ['model.image_size=16', 'model.hidden_dims=[4, 8]', 'model.latent_dim=4'];
const tiny = [...common, ...MODEL.flatMap((s) => ['--set', s])];

function run(bin: string, args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stderr: r.stderr };
}

for (const model of ['vae', 'mssim_vae', 'vae_gan']) {
  test(`invariance (${model}): 2 workers x micro-batch 4 equal 1 worker accumulating 2 micro-batches of 4 (max abs diff <= 1e-5, moving statistics included)`, () => {
    const sets = [`model.name=${model}`, 'train.batch_size=8', 'train.micro_batch=4', 'train.max_steps=3', 'model.feature_layer=1'];
    const flags = sets.flatMap((s) => ['--set', s]);
    const one = join(dir, `${model}-one`);
    const two = join(dir, `${model}-two`);
    const r1 = run(TRAIN, ['train', ...tiny, ...flags, '--out', one]);
    assert.equal(r1.status, 0, r1.stderr);
    // Buckets (4 KiB) and frames (1 KiB) far smaller than the gradients (about 11 KiB): many of each per all-reduce. One model
    // all-reduces after the backward pass, the others during it.
    const overlap = model !== 'mssim_vae';
    const r2 = run(DIST, [
      '--cpu-workers',
      '2',
      ...tiny,
      ...flags,
      '--bucket-mb',
      '0.00390625',
      '--chunk-kb',
      '1',
      ...(overlap ? [] : ['--no-overlap']),
      '--out',
      two,
    ]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.match(
      r2.stderr,
      new RegExp(`all-reduce in buckets of 0\\.00390625 MiB, frames of 1 KiB, ${overlap ? 'during' : 'after'} the backward pass`),
    );
    const a = checkpointWeights(one, [...MODEL, ...sets]);
    const b = checkpointWeights(two, [...MODEL, ...sets]);
    const diff = maxAbsDiff(a, b);
    assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
    // And training did move the weights: the comparison is not between two untouched inits.
    const init = createModel(loadConfig({ file: join(ROOT, 'configs/smoke.yaml'), sets: [...MODEL, ...sets] }).model, 1265, 5);
    const first = [...a.keys()][0]!;
    const initial = Object.values(init.networks)
      .flatMap((n) => n.trainableWeights)
      .find((w) => w.originalName === first)!
      .read()
      .dataSync();
    assert.ok(Math.abs(a.get(first)![0]! - initial[0]!) > 0, 'weights changed from their initial values');
    init.dispose();
  });
}

test('bad data-plane sizes are refused before any worker starts, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--bucket-mb', '0'], /--bucket-mb must give a positive whole number of 4-byte floats, got '0'/],
    [['--chunk-kb', '1.001'], /--chunk-kb must give a positive whole number/],
    [['--bucket-mb', '1', '--chunk-kb', '2048'], /--chunk-kb 2048 is larger than the bucket \(--bucket-mb 1\)/],
  ];
  for (const [flags, message] of cases) {
    const r = run(DIST, ['--cpu-workers', '2', ...tiny, ...flags, '--max-steps', '1', '--out', join(dir, 'bad-sizes')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, message);
  }
});

test('a medvae-dist checkpoint resumes under medvae train, and the other way round', () => {
  const runDir = join(dir, 'crossover');
  assert.equal(run(DIST, ['--cpu-workers', '2', ...tiny, '--epochs', '1', '--out', runDir]).status, 0);
  assert.equal(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step, 3);
  const single = run(TRAIN, ['train', '--resume', runDir, '--epochs', '2', '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(single.status, 0, single.stderr);
  assert.match(single.stderr, /resumed from .*step-0000003: epoch 2, step 3/);
  const back = run(DIST, ['--cpu-workers', '2', '--resume', runDir, '--epochs', '3', '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(back.status, 0, back.stderr);
  assert.match(back.stderr, /resumed from .*step-0000006: epoch 3, step 6/);
  assert.equal(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step, 9);
});

test('--gpus without a GPU backend falls back to CPU workers with one warning; --gpus 0 runs without an agent', () => {
  const r = run(DIST, ['--gpus', '0,1', ...tiny, '--max-steps', '1', '--out', join(dir, 'gpus')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.match(/warning: no GPU backend/g)?.length, 1);
  assert.match(r.stderr, /workers: cpu:0, cpu:1/);
  const single = run(DIST, ['--gpus', '0', ...tiny, '--max-steps', '1', '--out', join(dir, 'gpu0')]);
  assert.equal(single.status, 0, single.stderr);
  assert.doesNotMatch(single.stderr, /\[medvae dist\]/, 'no ring is formed for one device');
});

function startDist(args: string[]): ReturnType<typeof startProcess> {
  return startProcess([process.execPath, DIST, ...args], ROOT);
}

test('a worker killed with SIGKILL mid-run: all stop, and with --max-restarts 1 all restart from the last checkpoint and finish', async () => {
  const runDir = join(dir, 'killed');
  // The smoke model's steps, not the tiny one's: the kill must land before the remaining 9 steps are done.
  const d = await startDist([
    '--cpu-workers',
    '2',
    ...common,
    '--epochs',
    '4',
    '--set',
    'output.checkpoint_every_steps=2',
    '--max-restarts',
    '1',
    '--out',
    runDir,
  ]);
  await d.waitFor(/step 3\/3/);
  const victim = workersOf(d.child.pid!).get(1);
  assert.ok(victim, 'found rank 1');
  process.kill(victim, 'SIGKILL');
  const code = await d.exit;
  assert.equal(code, 0, d.output());
  assert.match(d.output(), /worker rank 1 \(cpu:1, pid \d+\) killed by SIGKILL/);
  assert.match(d.output(), /restarting all 2 workers from .*step-/);
  assert.match(d.output(), /finished at step 12 .* 1 restart\(s\)/);
  assert.equal(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step, 12);
});

test('without --max-restarts a killed worker stops the run non-zero, naming the worker and the intact checkpoint', async () => {
  const runDir = join(dir, 'killed-once');
  const d = await startDist(['--cpu-workers', '2', ...tiny, '--epochs', '50', '--set', 'output.checkpoint_every_steps=2', '--out', runDir]);
  await d.waitFor(/epoch 2\/50 step 1\/3/);
  process.kill(workersOf(d.child.pid!).get(0)!, 'SIGKILL');
  const started = Date.now();
  const code = await d.exit;
  assert.equal(code, 1);
  assert.ok(Date.now() - started < 10_000, 'noticed within seconds');
  const last = d.output().trim().split('\n').at(-1)!;
  assert.match(
    last,
    /^error: worker rank 0 \(cpu:0, pid \d+\) killed by SIGKILL.*Last checkpoint: .*step-\d+ \(intact\); continue with: npx medvae-dist --cpu-workers 2 --resume /,
  );
  const ckpt = latestCheckpoint(join(runDir, 'checkpoints'))!;
  assert.ok(readState(ckpt).step >= 2);
  assert.deepEqual(workersOf(d.child.pid!).size, 0, 'no worker left behind');
});

test('a hung worker (SIGSTOP) trips the step timeout and stops the run', async () => {
  const d = await startDist(['--cpu-workers', '2', ...tiny, '--epochs', '50', '--step-timeout', '5', '--out', join(dir, 'hung')]);
  await d.waitFor(/step 2\/3/);
  const victim = workersOf(d.child.pid!).get(1)!;
  process.kill(victim, 'SIGSTOP');
  const code = await d.exit;
  assert.equal(code, 1);
  assert.match(d.output(), /error: worker rank 1 \(cpu:1, pid \d+\) made no progress for \d+ s at step \d+ \(step timeout 5 s\): hung/);
  assert.throws(() => process.kill(victim, 0), 'the hung worker was killed');
});

test('Ctrl-C on medvae-dist: every worker stops after the same step, rank 0 checkpoints it, prints the --resume command, exit 130', async () => {
  const runDir = join(dir, 'interrupted');
  const d = await startDist(['--cpu-workers', '2', ...tiny, '--epochs', '100', '--out', runDir]);
  await d.waitFor(/epoch 2\/100 step 2\/3/);
  d.child.kill('SIGINT');
  const code = await d.exit;
  assert.equal(code, 130, d.output());
  assert.match(d.output(), /interrupted: workers finish this step/);
  const finished =
    /interrupted at step (\d+); checkpoint .*step-\d+; continue with: npx medvae-dist --cpu-workers 2 --resume \S*interrupted$/m.exec(
      d.output(),
    );
  assert.ok(finished, d.output());
  const state = readState(latestCheckpoint(join(runDir, 'checkpoints'))!);
  assert.equal(state.step, Number(finished[1]));
  assert.equal(state.epoch * 3 + state.stepInEpoch, state.step, 'the saved data position is the step reached');
});
