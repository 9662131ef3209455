// Checkpoints that prove themselves: a manifest written last, --resume that names a damaged
// checkpoint and continues from the newest intact one in the same run, leftovers of killed writes
// cleared, and metrics.jsonl cut back so no step is logged twice. `medvae train` runs in this
// process through its commander wiring (medvaeInProcess); each test damages a copy of the runs
// trained once in before().
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { medvaeInProcess as medvae } from '../helpers/medvae-cli.ts';
import { listCheckpoints } from '../../src/run/checkpoint.ts';
import { CheckpointDamagedError, verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';
import { removeStaleTemps } from '../../src/util/atomic.ts';
import { rewindMetrics } from '../../src/train/resume.ts';

const dir = mkdtempSync(join(tmpdir(), 'medvae-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'tiny.npz');
// 48 training images at batch 16: 3 steps an epoch.
writeTinyNpz(data, { train: 48, val: 8, test: 8 });
const base = ['train', '--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain'];

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function weightDigests(ckpt: string): string[] {
  return ['encoder/weights.bin', 'decoder/weights.bin', 'optimizer-model.bin'].map((f) => sha(join(ckpt, f)));
}

function loggedSteps(run: string): number[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number })
    .filter((r) => r.kind === 'step')
    .map((r) => r.step);
}

/** 3 epochs (step-0000003, 6 and 9), and the same run stopped after 2 (step-0000003 and 6); the tests copy them. */
const straight = join(dir, 'straight');
const twoEpochs = join(dir, 'two-epochs');

before(async () => {
  const r = await medvae([...base, '--epochs', '3', '--out', straight]);
  assert.equal(r.status, 0, r.stderr);
  const r2 = await medvae([...base, '--epochs', '2', '--out', twoEpochs]);
  assert.equal(r2.status, 0, r2.stderr);
});

function copyOf(run: string, name: string): string {
  const copy = join(dir, name);
  cpSync(run, copy, { recursive: true });
  return copy;
}

test('a checkpoint ends with a manifest of every file: size and SHA-256, and it verifies', () => {
  const run = twoEpochs;
  const ckpt = listCheckpoints(join(run, 'checkpoints')).at(-1)!;
  const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8')) as {
    version: number;
    files: Record<string, { size: number; sha256: string }>;
  };
  assert.equal(manifest.version, 1);
  assert.ok(
    manifest.files['encoder/weights.bin'] && manifest.files['state.json'] && manifest.files['optimizer-model.bin'],
    Object.keys(manifest.files).join(),
  );
  for (const [f, e] of Object.entries(manifest.files)) {
    assert.equal(statSync(join(ckpt, f)).size, e.size, f);
    assert.equal(sha(join(ckpt, f)), e.sha256, f);
  }
  verifyCheckpoint(ckpt);
});

test('--resume past a cut-short weights.bin: one line naming it, then the newest intact checkpoint of the same run, weights bit for bit', async () => {
  const run = copyOf(twoEpochs, 'run');
  const ckpts = listCheckpoints(join(run, 'checkpoints'));
  assert.deepEqual(
    ckpts.map((c) => c.slice(-12)),
    ['step-0000003', 'step-0000006'],
  );
  const weights = join(ckpts[1]!, 'encoder', 'weights.bin');
  truncateSync(weights, Math.floor(statSync(weights).size / 2));
  assert.throws(
    () => verifyCheckpoint(ckpts[1]!),
    (e: unknown) => e instanceof CheckpointDamagedError && e.file === weights,
  );
  // What a kill -9 during a checkpoint write leaves, and a record line cut short.
  const stale = join(run, 'checkpoints', '.step-0000009.4242.1700000000000.tmp');
  mkdirSync(join(stale, 'encoder'), { recursive: true });
  appendFileSync(join(run, 'metrics.jsonl'), '{"kind":"step","step":7,"ter');
  const before = readdirSync(dir).length;

  const r = await medvae(['train', '--resume', run, '--epochs', '3', '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.includes('damaged'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(
    warnings[0]!,
    /encoder\/weights\.bin: \d+ bytes, the manifest says \d+\).*moved aside to damaged-step-0000006; resuming from step-0000003/,
  );
  assert.match(r.stderr, /resumed from .*step-0000003: epoch 2, step 3/);
  assert.equal(readdirSync(dir).length, before, 'no new run directory');
  assert.ok(!existsSync(stale), 'stale temporary directory removed');
  assert.ok(existsSync(join(run, 'checkpoints', 'damaged-step-0000006')));
  assert.deepEqual(loggedSteps(run), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const last = listCheckpoints(join(run, 'checkpoints')).at(-1)!;
  assert.ok(last.endsWith('step-0000009'));
  assert.deepEqual(weightDigests(last), weightDigests(listCheckpoints(join(straight, 'checkpoints')).at(-1)!));
});

test('a checkpoint from before manifests still resumes; cut short, it is named by its own specs', async () => {
  const legacy = copyOf(straight, 'legacy');
  for (const c of listCheckpoints(join(legacy, 'checkpoints'))) rmSync(join(c, 'manifest.json'));
  const newest = listCheckpoints(join(legacy, 'checkpoints')).at(-1)!;
  verifyCheckpoint(newest);
  const opt = join(newest, 'optimizer-model.bin');
  truncateSync(opt, 100);
  assert.throws(() => verifyCheckpoint(newest), /optimizer-model\.bin: 100 bytes, its specs need \d+/);
  // The run's own 3 epochs: step-0000006 resumes to step 9.
  const r = await medvae(['train', '--resume', legacy, '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /optimizer-model\.bin: 100 bytes.*resuming from step-0000006/);
  assert.deepEqual(
    loggedSteps(legacy),
    Array.from({ length: 9 }, (_, i) => i + 1),
  );
});

test('--resume of one checkpoint by hand continues in its own run directory', async () => {
  const run = copyOf(straight, 'by-hand');
  const older = listCheckpoints(join(run, 'checkpoints'))[0]!;
  const before = readdirSync(dir).length;
  const r = await medvae(['train', '--resume', older, '--backend', 'wasm', '--log-format', 'plain']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readdirSync(dir).length, before, 'no new run directory');
  assert.match(r.stderr, new RegExp(`run directory: ${run.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.match(
    r.stderr,
    /resuming step-0000003 by hand: the run's later checkpoints are set aside as superseded-step-0000006, superseded-step-0000009/,
  );
  // Steps 4 to 9 again, beside the checkpoint resumed.
  assert.deepEqual(
    listCheckpoints(join(run, 'checkpoints')).map((c) => c.slice(-12)),
    ['step-0000003', 'step-0000006', 'step-0000009'],
  );
  assert.deepEqual(
    loggedSteps(run),
    Array.from({ length: 9 }, (_, i) => i + 1),
  );
});

test('stale temporaries: removed, and a replaced directory whose replacement never landed is put back', () => {
  const d = join(dir, 'stale');
  mkdirSync(join(d, '.best.77.1700000000000.tmp.old'), { recursive: true });
  writeFileSync(join(d, '.best.77.1700000000000.tmp.old', 'state.json'), '{}');
  mkdirSync(join(d, '.best.77.1700000000000.tmp'));
  writeFileSync(join(d, '.loss.png.88.1700000000001.tmp'), 'x');
  writeFileSync(join(d, 'keep.png'), 'x');
  assert.equal(removeStaleTemps(d).length, 3);
  assert.deepEqual(readdirSync(d).sort(), ['best', 'keep.png']);
  assert.ok(existsSync(join(d, 'best', 'state.json')));
});

test('rewindMetrics keeps records up to the step, and records without a step', () => {
  const f = join(dir, 'm.jsonl');
  writeFileSync(
    f,
    [
      '{"kind":"start","step":0}',
      '{"kind":"step","step":1}',
      '{"kind":"epoch","step":1}',
      '{"kind":"step","step":2}',
      '{"note":1}',
      '{"kind":"st',
    ].join('\n'),
  );
  assert.equal(rewindMetrics(f, 1), 2);
  assert.deepEqual(readFileSync(f, 'utf8').trim().split('\n'), [
    '{"kind":"start","step":0}',
    '{"kind":"step","step":1}',
    '{"kind":"epoch","step":1}',
    '{"note":1}',
  ]);
});
