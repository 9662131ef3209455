// The native backend's run plan (src/backend/native/run-plan.ts): its keys and file, a plan from
// another onnxruntime started again, and, on onnxruntime, what a deterministic run chooses: the
// fixed rule's graph, no race, and on several threads the bits of one thread.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { tf } from '../../src/util/tf.ts';
import { initBackend, useNativePlan } from '../../src/backend/index.ts';
import { GRAPH_SET } from '../../src/backend/native/choices.ts';
import { nchwcBlockSize } from '../../src/backend/native/nchwc.ts';
import { chosenGraphs, clearSessions, forceCandidate, loadBinding, setNativeThreads } from '../../src/backend/native/kernels.ts';
import {
  closeRunPlan,
  parsePlan,
  PLAN_FILE,
  planKey,
  serialisePlan,
  type PlannedChoice,
  type RunPlan,
} from '../../src/backend/native/run-plan.ts';
import { nativeUnavailable } from '../helpers/native.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('medvae-run-plan-');
// The machine's remembered choices of this test's own (a non-deterministic run reads and adds to them).
process.env['MEDVAE_NATIVE_CHOICES'] = join(dir, 'machine-choices.json');

const conv: PlannedChoice = { graph: 'conv', threads: 2, by: 'rule' };
const gemm: PlannedChoice = { graph: 'gemm', threads: 1, by: 'timed' };

describe('plan keys and file', () => {
  test('a key names the threads, then the kernel and its shape', () => {
    assert.equal(planKey('Conv2D|8,32,32,3', 1), '1 thread|Conv2D|8,32,32,3');
    assert.equal(planKey('Conv2D|8,32,32,3', 4), '4 threads|Conv2D|8,32,32,3');
  });

  test('serialised: one line per choice, sorted by key; parsed back to the same plan', () => {
    const plan: RunPlan = { format: 1, onnxruntime: '1.30.0', graphs: 9, choices: { 'b|x': conv, 'a|y': gemm } };
    const text = serialisePlan(plan);
    assert.deepEqual(text.split('\n').slice(1, 3), [`  "a|y": ${JSON.stringify(gemm)},`, `  "b|x": ${JSON.stringify(conv)}`]);
    assert.deepEqual(JSON.parse(text), plan);
    const parsed = parsePlan(text);
    assert.deepEqual(parsed, plan);
    assert.deepEqual(Object.keys((parsed as RunPlan).choices), ['a|y', 'b|x']);
    assert.deepEqual(parsePlan(serialisePlan({ ...plan, choices: {} })), { ...plan, choices: {} });
  });

  test('what is not a plan is told in one line', () => {
    assert.match(parsePlan('{"format": 1,') as string, /^not JSON/);
    assert.equal(parsePlan('[]'), 'not a JSON object');
    assert.equal(parsePlan('{"format": 2}'), 'format 2, not 1');
    const badChoice = JSON.stringify({
      format: 1,
      onnxruntime: '1.30.0',
      graphs: 9,
      choices: { k: { graph: 'conv', threads: 0, by: 'rule' } },
    });
    assert.equal(parsePlan(badChoice), "choice 'k' is not {graph, threads, by}");
  });
});

const skip = nativeUnavailable();

/** Deterministic values in [-1, 1). */
function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** A product whose columns onnxruntime splits among threads (K large, M and N small). */
const product = (): tf.Tensor => tf.matMul(tf.tensor2d(values(64 * 2048, 1), [64, 2048]), tf.tensor2d(values(2048 * 128, 2), [2048, 128]));
const PRODUCT_KEY = 'BatchMatMul|64,2048|2048,128|00';
/** A convolution of 8 channels into 16: the blocked-channel graph where this CPU has blocks, else 'conv'. */
const convolution = (): tf.Tensor =>
  tf.conv2d(tf.tensor4d(values(8 * 16 * 16 * 8, 3), [8, 16, 16, 8]), tf.tensor4d(values(3 * 3 * 8 * 16, 4), [3, 3, 8, 16]), 1, 'same');
const CONV_KEY = 'Conv2D|8,16,16,8,16,3,3,1,1,1,1,1,1,16,16';

function bits(build: () => tf.Tensor): Uint32Array {
  const t = tf.tidy(build);
  const out = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
  t.dispose();
  return out;
}

/** `build`'s bits with `graph` forced at `threads` threads (no plan). */
function forcedBits(build: () => tf.Tensor, graph: string, threads: number): Uint32Array {
  setNativeThreads(threads);
  forceCandidate(graph);
  const out = bits(build);
  forceCandidate(undefined);
  return out;
}

/** The plan file of `runDir`, parsed. */
function planOf(runDir: string): RunPlan {
  const plan = parsePlan(readFileSync(join(runDir, PLAN_FILE), 'utf8'));
  assert.notEqual(typeof plan, 'string', String(plan));
  return plan as RunPlan;
}

describe('a run plan on onnxruntime', { skip }, () => {
  const logged: string[] = [];
  const log = (line: string): void => void logged.push(line);
  before(async () => {
    await initBackend('native');
  });
  after(() => {
    closeRunPlan();
    clearSessions();
  });

  test('deterministic: the fixed rule picks the graph, no race, and on 2 threads the bits of 1 thread (written by the chief after the step)', async () => {
    const oneThread = forcedBits(product, 'gemm', 1);
    const twoThreads = forcedBits(product, 'gemm', 2);
    const convGraph = nchwcBlockSize() > 1 ? 'nchwc' : 'conv';
    const convOneThread = forcedBits(convolution, convGraph, 1);
    const runDir = join(dir, 'deterministic');
    setNativeThreads(2);
    useNativePlan(runDir, { deterministic: true, write: true, log });
    assert.deepEqual(bits(product), oneThread);
    assert.deepEqual(bits(convolution), convOneThread);
    assert.equal(chosenGraphs().get(CONV_KEY), convGraph);
    await nextTurn();
    const { choices, onnxruntime, graphs } = planOf(runDir);
    assert.deepEqual([onnxruntime, graphs], [loadBinding().version, GRAPH_SET]);
    // One thread exactly where this onnxruntime's bits depend on the threads (they do here for
    // this product on every machine measured; the test holds either way).
    const dependent = twoThreads.some((b, i) => b !== oneThread[i]);
    assert.deepEqual(choices[planKey(PRODUCT_KEY, 2)], { graph: 'gemm', threads: dependent ? 1 : 2, by: 'rule' });
    assert.equal(choices[planKey(CONV_KEY, 2)]?.graph, convGraph);
    assert.equal(choices[planKey(CONV_KEY, 2)]?.by, 'rule');
    assert.deepEqual(logged, []);
  });

  test('a planned choice is followed; a worker that does not write leaves the file alone', async () => {
    const runDir = join(dir, 'followed');
    mkdirSync(runDir, { recursive: true });
    const file = join(runDir, PLAN_FILE);
    const plan: RunPlan = {
      format: 1,
      onnxruntime: loadBinding().version,
      graphs: GRAPH_SET,
      choices: { [planKey(CONV_KEY, 1)]: { graph: 'im2col-matmul', threads: 1, by: 'timed' } },
    };
    writeFileSync(file, serialisePlan(plan));
    const want = forcedBits(convolution, 'im2col-matmul', 1);
    useNativePlan(runDir, { deterministic: true, write: false, log });
    assert.deepEqual(bits(convolution), want);
    assert.equal(chosenGraphs().get(CONV_KEY), 'im2col-matmul');
    // Not in the plan: chosen by the rule, kept in memory only.
    bits(product);
    await nextTurn();
    assert.equal(readFileSync(file, 'utf8'), serialisePlan(plan));
  });

  test('a plan from another onnxruntime: one line, planned again, rewritten with this version; not deterministic: timed', async () => {
    const runDir = join(dir, 'old');
    const old: RunPlan = {
      format: 1,
      onnxruntime: '0.0.1',
      graphs: GRAPH_SET,
      choices: { [planKey(CONV_KEY, 1)]: { graph: 'wasm', threads: 1, by: 'timed' } },
    };
    mkdirSync(runDir, { recursive: true });
    writeFileSync(join(runDir, PLAN_FILE), serialisePlan(old));
    logged.length = 0;
    setNativeThreads(1);
    useNativePlan(runDir, { deterministic: false, write: true, log });
    assert.equal(logged.length, 1);
    assert.equal(
      logged[0],
      `native plan ${join(runDir, PLAN_FILE)} was made with onnxruntime 0.0.1 (graphs ${GRAPH_SET}), this is ${loadBinding().version} (graphs ${GRAPH_SET}): planning the shapes again`,
    );
    bits(convolution);
    await nextTurn();
    const plan = planOf(runDir);
    assert.equal(plan.onnxruntime, loadBinding().version);
    assert.equal(plan.choices[planKey(CONV_KEY, 1)]?.by, 'timed');
    assert.equal(plan.choices[planKey(CONV_KEY, 1)]?.graph, chosenGraphs().get(CONV_KEY));
  });
});
