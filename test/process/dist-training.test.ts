// medvae-dist end to end: real worker processes, real TCP ring, real kills. The one-worker references
// of the invariance tests and the resume under `medvae train` run in this process (medvaeInProcess):
// what they prove is numbers and a command's output, not a process. Two of the invariance tests read
// the runs of the Ctrl-C and killed-worker tests (made once, in before hooks): a checkpoint a run
// wrote before it was stopped holds the same numbers as a run that ended there. A worker killed with
// --max-restarts, and a hung (SIGSTOPped) worker tripping the step timeout, are proven by
// chaos.test.ts, whose run takes one fault of each kind.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { smokeFlags, writeTinyNpz } from '../helpers/tiny-data.ts';
import { startProcess, workersOf, type RunningProcess } from '../helpers/dist-process.ts';
import { latestCheckpoint, readState } from '../../src/run/checkpoint.ts';
import { checkpointWeights, maxAbsDiff } from '../helpers/checkpoint-weights.ts';
import { medvaeInProcess } from '../helpers/medvae-cli.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createModel } from '../../src/models/index.ts';
import { tempDir } from '../helpers/temp-dir.ts';

await tf.setBackend('cpu');
const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const dir = tempDir('medvae-dist-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 48, val: 8, test: 8, size: 16 });
// 16x16 images and two narrow conv layers: what these tests prove does not depend on the model's size,
// and a step costs little next to a process's start.
const MODEL = ['model.image_size=16', 'model.hidden_dims=[4, 8]', 'model.latent_dim=4'];
const tiny = [...smokeFlags(data), ...MODEL.flatMap((s) => ['--set', s])];
const setFlags = (sets: string[]): string[] => sets.flatMap((s) => ['--set', s]);
// Buckets (4 KiB) and frames (1 KiB) far smaller than the gradients (about 11 KiB): many of each per
// all-reduce, in every run an invariance test reads.
const SMALL_PLANE = ['--bucket-mb', '0.00390625', '--chunk-kb', '1'];
const planeLine = (when: 'during' | 'after'): RegExp =>
  new RegExp(`all-reduce in buckets of 0\\.00390625 MiB, frames of 1 KiB, ${when} the backward pass`);

function dist(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [DIST, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stderr: r.stderr };
}

function startDist(args: string[]): RunningProcess {
  return startProcess([process.execPath, DIST, ...args], ROOT);
}

/**
 * The newest checkpoints of a 2-worker run and of its 1-worker reference hold the same weights
 * (max abs diff <= 1e-5, BatchNorm's moving statistics included), and training moved them.
 */
function assertSameWeights(one: string, two: string, sets: string[]): void {
  const a = checkpointWeights(one, [...MODEL, ...sets]);
  const b = checkpointWeights(two, [...MODEL, ...sets]);
  assert.equal(readState(latestCheckpoint(join(one, 'checkpoints'))!).step, readState(latestCheckpoint(join(two, 'checkpoints'))!).step);
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
}

/**
 * A `medvae train` checkpoint (1 epoch, step 3; 1 worker accumulating 2 micro-batches of 8) resumed
 * by medvae-dist (2 workers x 8), which is interrupted with Ctrl-C: its exit code and output, read by
 * the Ctrl-C test, the crossover test and the vae invariance test; its checkpoint, resumed (from a
 * copy) under `medvae train` by the crossover test; `reference`, a copy of the run as `medvae train`
 * left it, which the invariance test resumes in one worker to the step the interrupted run reached.
 */
const INTERRUPTED_SETS = ['train.micro_batch=8'];
const interrupted = { dir: join(dir, 'interrupted'), reference: join(dir, 'interrupted-one'), code: null as number | null, output: '' };
before(async () => {
  const single = await medvaeInProcess(['train', ...tiny, ...setFlags(INTERRUPTED_SETS), '--epochs', '1', '--out', interrupted.dir]);
  assert.equal(single.status, 0, single.stderr);
  cpSync(interrupted.dir, interrupted.reference, { recursive: true });
  const d = startDist([
    '--cpu-workers',
    '2',
    '--resume',
    interrupted.dir,
    '--epochs',
    '100',
    '--backend',
    'wasm',
    '--log-format',
    'plain',
    ...SMALL_PLANE,
  ]);
  await d.waitFor(/epoch 3\/100 step 2\/3/);
  d.child.kill('SIGINT');
  interrupted.code = await d.exit;
  interrupted.output = d.output();
});

/**
 * mssim_vae on 2 workers x micro-batch 4 (6 steps an epoch, a checkpoint every 2, the all-reduce after
 * the backward pass) whose rank 0 is SIGKILLed in step 6, without --max-restarts: its exit, output
 * and the time from the kill to the exit, read by the killed-worker test; its last checkpoint, by the
 * mssim_vae invariance test.
 */
const KILLED_SETS = ['model.name=mssim_vae', 'train.batch_size=8', 'train.micro_batch=4', 'output.checkpoint_every_steps=2'];
const killed = { dir: join(dir, 'killed-once'), code: null as number | null, output: '', noticedMs: 0, workersLeft: -1 };
before(async () => {
  const d = startDist([
    '--cpu-workers',
    '2',
    ...tiny,
    ...setFlags(KILLED_SETS),
    '--epochs',
    '50',
    ...SMALL_PLANE,
    '--no-overlap',
    '--out',
    killed.dir,
  ]);
  await d.waitFor(/epoch 1\/50 step 5\/6/);
  process.kill(workersOf(d.child.pid!).get(0)!, 'SIGKILL');
  const started = Date.now();
  killed.code = await d.exit;
  killed.noticedMs = Date.now() - started;
  killed.output = d.output();
  killed.workersLeft = workersOf(d.child.pid!).size;
});

test('invariance (vae): 2 workers x micro-batch 8, resumed from a medvae train checkpoint and stopped by Ctrl-C, equal 1 worker accumulating 2 micro-batches of 8 resumed from it to the same step (max abs diff <= 1e-5, moving statistics included)', async () => {
  assert.equal(interrupted.code, 130, interrupted.output);
  assert.match(interrupted.output, planeLine('during'));
  assert.match(interrupted.output, /2 worker\(s\) x 1 micro-batch\(es\) of <= 8/);
  const reached = readState(latestCheckpoint(join(interrupted.dir, 'checkpoints'))!).step;
  const one = await medvaeInProcess([
    'train',
    '--resume',
    interrupted.reference,
    '--epochs',
    '100',
    '--max-steps',
    String(reached),
    '--backend',
    'wasm',
    '--log-format',
    'plain',
  ]);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stderr, /1 worker\(s\) x 2 micro-batch\(es\) of <= 8/);
  assertSameWeights(interrupted.reference, interrupted.dir, INTERRUPTED_SETS);
});

test('invariance (mssim_vae): 2 workers x micro-batch 4, to the last checkpoint before a worker was killed, equal 1 worker accumulating 2 micro-batches of 4 to that step (max abs diff <= 1e-5, moving statistics included)', async () => {
  assert.match(killed.output, planeLine('after'));
  const reached = readState(latestCheckpoint(join(killed.dir, 'checkpoints'))!).step;
  const one = join(dir, 'mssim_vae-one');
  const r1 = await medvaeInProcess([
    'train',
    ...tiny,
    ...setFlags([...KILLED_SETS, `train.max_steps=${reached}`]),
    '--epochs',
    '50',
    '--out',
    one,
  ]);
  assert.equal(r1.status, 0, r1.stderr);
  assertSameWeights(one, killed.dir, KILLED_SETS);
});

// vae_gan's pair is started through --gpus on this machine without a GPU backend: its two workers are
// the CPU workers --gpus 0,1 falls back to, its one worker the agent-less path of --gpus 0.
test('invariance (vae_gan): 2 workers x micro-batch 4 equal 1 worker accumulating 2 micro-batches of 4 (max abs diff <= 1e-5, moving statistics included); --gpus without a GPU backend falls back to CPU workers with one warning; --gpus 0 runs without an agent', () => {
  const sets = ['model.name=vae_gan', 'train.batch_size=8', 'train.micro_batch=4', 'train.max_steps=3', 'model.feature_layer=1'];
  const one = join(dir, 'vae_gan-one');
  const two = join(dir, 'vae_gan-two');
  const single = dist(['--gpus', '0', ...tiny, ...setFlags(sets), '--out', one]);
  assert.equal(single.status, 0, single.stderr);
  assert.doesNotMatch(single.stderr, /\[medvae dist\]/, 'no ring is formed for one device');
  const r2 = dist(['--gpus', '0,1', ...tiny, ...setFlags(sets), ...SMALL_PLANE, '--out', two]);
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, planeLine('during'));
  assert.equal(r2.stderr.match(/warning: no GPU backend/g)?.length, 1);
  assert.match(r2.stderr, /workers: cpu:0, cpu:1/);
  assertSameWeights(one, two, sets);
});

test('bad data-plane sizes are refused before any worker starts, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--bucket-mb', '0'], /--bucket-mb must give a positive whole number of 4-byte floats, got '0'/],
    [['--chunk-kb', '1.001'], /--chunk-kb must give a positive whole number/],
    [['--bucket-mb', '1', '--chunk-kb', '2048'], /--chunk-kb 2048 is larger than the bucket \(--bucket-mb 1\)/],
  ];
  for (const [flags, message] of cases) {
    const r = dist(['--cpu-workers', '2', ...tiny, ...flags, '--max-steps', '1', '--out', join(dir, 'bad-sizes')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, message);
  }
});

test('Ctrl-C on medvae-dist: every worker stops after the same step, rank 0 checkpoints it, prints the --resume command, exit 130', () => {
  const out = interrupted.output;
  assert.equal(interrupted.code, 130, out);
  assert.match(out, /interrupted: workers finish this step/);
  const finished =
    /interrupted at step (\d+); checkpoint .*step-\d+; continue with: npx medvae-dist --cpu-workers 2 --resume \S*interrupted$/m.exec(out);
  assert.ok(finished, out);
  const state = readState(latestCheckpoint(join(interrupted.dir, 'checkpoints'))!);
  assert.equal(state.step, Number(finished[1]));
  assert.equal(state.epoch * 3 + state.stepInEpoch, state.step, 'the saved data position is the step reached');
});

test('a medvae train checkpoint resumes under medvae-dist, and a medvae-dist checkpoint under medvae train', async () => {
  // medvae train -> medvae-dist: the interrupted run above began from the single worker's step 3.
  assert.match(interrupted.output, /resumed from .*step-0000003: epoch 2, step 3/);
  // medvae-dist -> medvae train: from a copy of its checkpoint, often mid-epoch, so the data position
  // must carry across 2 workers -> 1.
  const runDir = join(dir, 'crossover');
  cpSync(interrupted.dir, runDir, { recursive: true });
  const start = readState(latestCheckpoint(join(runDir, 'checkpoints'))!);
  assert.ok(start.step > 3, 'medvae-dist trained past the step it resumed from');
  const single = await medvaeInProcess([
    'train',
    '--resume',
    runDir,
    '--epochs',
    String(start.epoch + 2),
    '--backend',
    'wasm',
    '--log-format',
    'plain',
  ]);
  assert.equal(single.status, 0, single.stderr);
  const pad = (n: number): string => String(n).padStart(7, '0');
  assert.match(single.stderr, new RegExp(`resumed from .*step-${pad(start.step)}: epoch ${start.epoch + 1}, step ${start.step}`));
  assert.equal(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step, (start.epoch + 2) * 3);
});

test('without --max-restarts a killed worker stops the run non-zero, naming the worker and the intact checkpoint', () => {
  assert.equal(killed.code, 1, killed.output);
  assert.ok(killed.noticedMs < 10_000, `noticed within seconds (${killed.noticedMs} ms)`);
  const last = killed.output.trim().split('\n').at(-1)!;
  assert.match(
    last,
    /^error: worker rank 0 \(cpu:0, pid \d+\) killed by SIGKILL.*Last checkpoint: .*step-\d+ \(intact\); continue with: npx medvae-dist --cpu-workers 2 --resume /,
  );
  const ckpt = latestCheckpoint(join(killed.dir, 'checkpoints'))!;
  assert.ok(readState(ckpt).step >= 2);
  assert.equal(killed.workersLeft, 0, 'no worker left behind');
});
