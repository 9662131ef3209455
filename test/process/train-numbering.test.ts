// One way of counting for a person reading the console and metrics.jsonl side by side: steps and
// epochs from 1. The console's "epoch 2/2 step 1/3" is the record {"step":4,"epoch":2}; the epoch's
// grid is samples/epoch-0002.png; --log-format json counts the same; a resumed run goes on counting.
// `medvae train` runs in this process through its commander wiring (medvaeInProcess).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { medvaeInProcess as medvae } from '../helpers/medvae-cli.ts';
import { readMetricsLog } from '../../src/run/metrics-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'medvae-numbering-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const npz = join(dir, 'tiny.npz');
// 48 training images at batch 16: 3 steps an epoch.
writeTinyNpz(npz, { train: 48, val: 8, test: 8 });
const base = ['train', '--config', 'configs/smoke.yaml', '--data', npz, '--backend', 'wasm'];

/** Step number -> epoch, from the console's "epoch E/N step S/M" lines. */
function consoleEpochs(stderr: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of stderr.matchAll(/^epoch (\d+)\/\d+ step (\d+)\/(\d+) /gm)) {
    out.set((Number(m[1]) - 1) * Number(m[3]) + Number(m[2]), Number(m[1]));
  }
  return out;
}

test('metrics.jsonl counts epochs as the console does, and so does a resumed run', async () => {
  const run = join(dir, 'run');
  const first = await medvae([...base, '--epochs', '2', '--log-format', 'plain', '--out', run]);
  assert.equal(first.status, 0, first.stderr);
  const shown = consoleEpochs(first.stderr);
  assert.deepEqual(
    [...shown.entries()],
    [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 2],
      [5, 2],
      [6, 2],
    ],
  );
  let log = readMetricsLog(join(run, 'metrics.jsonl'));
  assert.deepEqual(
    log.filter((r) => r.kind === 'step').map((r) => [r.step, r.epoch]),
    [...shown.entries()],
    'each step record has the epoch the console showed for that step',
  );
  assert.deepEqual(
    log.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.step, r.complete]),
    [
      [1, 3, true],
      [2, 6, true],
    ],
  );
  assert.equal(log.find((r) => r.kind === 'start')!.epoch, 1);
  for (const e of log.filter((r) => r.kind === 'epoch')) {
    assert.ok(existsSync(join(run, 'samples', `epoch-${String(e.epoch).padStart(4, '0')}.png`)), `the grid of epoch ${e.epoch}`);
  }

  const resumed = await medvae(['train', '--resume', run, '--epochs', '3', '--log-format', 'plain']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*: epoch 3, step 6/);
  log = readMetricsLog(join(run, 'metrics.jsonl'));
  assert.deepEqual(
    log.filter((r) => r.kind === 'start').map((r) => [r.step, r.epoch]),
    [
      [0, 1],
      [6, 3],
    ],
    'a start record names the epoch about to run',
  );
  assert.deepEqual(
    log.filter((r) => r.kind === 'step' && r.step > 6).map((r) => [r.step, r.epoch]),
    [...consoleEpochs(resumed.stderr).entries()],
  );
  assert.deepEqual(
    log.filter((r) => r.kind === 'epoch').map((r) => r.epoch),
    [1, 2, 3],
  );
});

test('--log-format json counts steps and epochs from 1, as metrics.jsonl does', async () => {
  const run = join(dir, 'json');
  const r = await medvae([...base, '--log-format', 'json', '--epochs', '2', '--max-steps', '4', '--out', run]);
  assert.equal(r.status, 0, r.stderr);
  const events = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event?: string; step?: number; epoch?: number; stepInEpoch?: number })
    .filter((e) => e.event === 'step');
  assert.deepEqual(
    events.map((e) => [e.step, e.epoch, e.stepInEpoch]),
    [
      [1, 1, 1],
      [2, 1, 2],
      [3, 1, 3],
      [4, 2, 1],
    ],
  );
  const records = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; epoch: number })
    .filter((rec) => rec.kind === 'step');
  assert.deepEqual(
    records.map((rec) => [rec.step, rec.epoch]),
    events.map((e) => [e.step, e.epoch]),
  );
});
