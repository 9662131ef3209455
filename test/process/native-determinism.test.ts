// Deterministic native runs (train.deterministic: on by default for several workers, asked for here
// in the one process), end to end through the command line: one process accumulating two
// micro-batches of 32 equals two workers of 32 each, bit for
// bit, though the process computes with every core and each worker with half; a --resume follows
// the run's plan (native-plan.json) and adds nothing to it. Skips, saying why, where
// onnxruntime-node cannot load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parsePlan, PLAN_FILE, type RunPlan } from '../../src/backend/native/run-plan.ts';
import { latestCheckpoint } from '../../src/run/checkpoint.ts';
import { checkpointWeights, maxAbsDiff } from '../helpers/checkpoint-weights.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';

const skip = nativeUnavailable();
const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'medvae.js');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const dir = tempDir('medvae-native-det-');
const data = join(dir, 'tiny.npz');
// Five steps of 64 (the loader resizes 28 to 32).
writeTinyNpz(data, { train: 320, val: 8, test: 8 });
// The case: the Vanilla VAE at 32x32, global batch 64, 5 steps.
const sets = ['train.batch_size=64', 'train.micro_batch=32', 'train.max_steps=5', 'train.epochs=5'];
const common = [
  '--config',
  'configs/smoke.yaml',
  '--data',
  data,
  '--backend',
  'native',
  '--log-format',
  'plain',
  ...sets.flatMap((s) => ['--set', s]),
];

function run(bin: string, args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

let single: { runDir: string; stderr: string } | undefined;
/**
 * `medvae train`, one process accumulating two micro-batches of 32 (made once, for both tests). Its
 * checkpoint at step 3 is where the resume test stops and resumes the run, as a run stopped there
 * would be: a checkpoint changes no number of the training, which the equality with medvae-dist's
 * run (no checkpoint before the end) shows.
 */
function singleRun(): { runDir: string; stderr: string } {
  if (single === undefined) {
    const runDir = join(dir, 'single');
    const sets = ['train.deterministic=true', 'output.checkpoint_every_steps=3'];
    single = { runDir, stderr: run(BIN, ['train', ...common, ...sets.flatMap((s) => ['--set', s]), '--out', runDir]) };
  }
  return single;
}

function planOf(runDir: string): RunPlan {
  const plan = parsePlan(readFileSync(join(runDir, PLAN_FILE), 'utf8'));
  assert.notEqual(typeof plan, 'string', `${runDir}: ${String(plan)}`);
  return plan as RunPlan;
}

test(
  'native: medvae train (micro-batches of 32) equals medvae-dist --cpu-workers 2, every weight and running statistic bit for bit',
  { skip },
  () => {
    const one = singleRun();
    const two = join(dir, 'two');
    const stderr = run(DIST, ['--cpu-workers', '2', ...common, '--out', two]);
    const cores = availableParallelism();
    assert.match(one.stderr, new RegExp(`backend: native \\(onnxruntime-node, ${cores} threads?; requested\\)`));
    assert.match(
      stderr,
      new RegExp(`rank 1: backend: native \\(onnxruntime-node, ${Math.max(1, Math.floor(cores / 2))} threads?; requested\\)`),
    );
    assert.match(stderr, /2 worker\(s\) x 1 micro-batch\(es\) of <= 32/);
    const a = checkpointWeights(one.runDir, sets);
    const b = checkpointWeights(two, sets);
    assert.ok(
      [...a.keys()].some((k) => k.endsWith('moving_variance')),
      'running statistics compared',
    );
    assert.equal(maxAbsDiff(a, b), 0);
    // Each run planned its shapes by the fixed rule, at its own thread count.
    for (const runDir of [one.runDir, two]) {
      const choices = Object.values(planOf(runDir).choices);
      assert.ok(choices.length > 10);
      assert.ok(choices.every((c) => c.by === 'rule' && c.graph !== 'wasm'));
    }
  },
);

test('native: a --resume follows the run plan and adds nothing to it; the same run with another plan computes other bits', { skip }, () => {
  const straight = singleRun().runDir;
  // Two copies of the straight run, each resumed from its step 3 (its later checkpoints set aside).
  const halves = join(dir, 'halves');
  const tampered = join(dir, 'tampered');
  for (const copy of [halves, tampered]) cpSync(straight, copy, { recursive: true });
  const planFile = join(halves, PLAN_FILE);
  const planText = readFileSync(planFile, 'utf8');
  const planTime = statSync(planFile).mtimeMs;
  const resume = (runDir: string): void => {
    const stderr = run(BIN, [
      'train',
      '--resume',
      join(runDir, 'checkpoints', 'step-0000003'),
      '--max-steps',
      '5',
      '--backend',
      'native',
      '--log-format',
      'plain',
    ]);
    assert.match(stderr, /resumed from .*step-0000003/);
  };
  resume(halves);
  assert.ok(latestCheckpoint(join(halves, 'checkpoints'))!.endsWith('step-0000005'));
  assert.equal(maxAbsDiff(checkpointWeights(halves, sets), checkpointWeights(straight, sets)), 0);
  assert.equal(readFileSync(planFile, 'utf8'), planText);
  assert.equal(statSync(planFile).mtimeMs, planTime, 'the resumed run found every shape in the plan');
  // Every filter gradient on the wasm kernel instead: the resumed steps round differently.
  const plan = planOf(tampered);
  let changed = 0;
  for (const [key, choice] of Object.entries(plan.choices)) {
    if (!key.includes('|Conv2DBackpropFilter|')) continue;
    plan.choices[key] = { ...choice, graph: 'wasm' };
    changed++;
  }
  assert.ok(changed > 0);
  writeFileSync(join(tampered, PLAN_FILE), JSON.stringify(plan));
  resume(tampered);
  assert.ok(maxAbsDiff(checkpointWeights(tampered, sets), checkpointWeights(straight, sets)) > 0);
});
