// onnxruntime-node's internal synchronous binding, which the native backend is written against:
// its shape is checked at load with a named error, its version is pinned by the lock file, and a
// machine without the package gets one line saying so (auto) or how to get it (--backend native).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkBinding, loadBinding, NativeBindingError } from '../../src/backend/native/binding.ts';
import { encodeModel } from '../../src/backend/native/onnx-model.ts';
import { nativeUnavailable } from '../helpers/native.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const HIDE = join(import.meta.dirname, '..', 'helpers', 'hide-onnxruntime.cjs');

test('a binding of another shape is refused by name', () => {
  class Tensor {}
  const session = class {
    loadModel(): void {}
    run(): void {}
    dispose(): void {}
  };
  const cases: [unknown, RegExp][] = [
    [undefined, /dist\/binding exports nothing/],
    [{ binding: { InferenceSession: session } }, /no initOrt\(\)/],
    [{ initOrt: () => undefined }, /no binding object/],
    [{ initOrt: () => undefined, binding: {} }, /no binding\.InferenceSession constructor/],
    [
      {
        initOrt: () => undefined,
        binding: {
          InferenceSession: class {
            loadModel(): void {}
            dispose(): void {}
          },
        },
      },
      /InferenceSession has no run\(\)/,
    ],
  ];
  for (const [module, message] of cases) {
    assert.throws(
      () => checkBinding(module, Tensor, '9.9.9'),
      (e: unknown) => {
        assert.ok(e instanceof NativeBindingError);
        assert.match(e.message, /^onnxruntime-node 9\.9\.9: its internal binding has changed/);
        assert.match(e.message, message);
        assert.equal(e.missing, false);
        return true;
      },
    );
  }
  assert.ok(checkBinding({ initOrt: () => undefined, binding: { InferenceSession: session } }, Tensor, '9.9.9'));
});

test(
  'the installed onnxruntime-node is the version the lock file pins, and its binding has the expected shape',
  { skip: nativeUnavailable() },
  () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
    const pinned = lock.packages['node_modules/onnxruntime-node']?.version;
    assert.ok(pinned, 'package-lock.json pins onnxruntime-node');
    const binding = loadBinding();
    assert.equal(binding.version, pinned);
    // A model built in code runs at once (synchronously) on views into one buffer, as tensors on the
    // wasm heap are, and writes a given output in place.
    const heap = new Float32Array(16);
    heap.set([1, 2, 3, 4], 2);
    heap.set([10, 20, 30, 40], 8);
    const session = binding.newSession();
    const bytes = encodeModel({
      inputs: [
        { name: 'a', shape: [2, 2] },
        { name: 'b', shape: [2, 2] },
      ],
      outputs: [{ name: 'y', shape: [2, 2] }],
      nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    });
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      enableCpuMemArena: true,
      enableMemPattern: true,
      logSeverityLevel: 3,
      extra: {},
    });
    const output = heap.subarray(12, 16);
    session.run(
      { a: binding.tensor(heap.subarray(2, 6), [2, 2]), b: binding.tensor(heap.subarray(8, 12), [2, 2]) },
      { y: binding.tensor(output, [2, 2]) },
      {},
    );
    assert.deepEqual([...heap.subarray(12, 16)], [70, 100, 150, 220]);
    session.dispose();
  },
);

function medvae(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--require', HIDE, join(ROOT, 'bin', 'medvae.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stderr: r.stderr };
}

test('without onnxruntime-node: --backend native is a one-line error saying how to get it', () => {
  const r = medvae(['train', '--config', 'configs/smoke.yaml', '--backend', 'native', '--max-steps', '1', '--log-format', 'plain']);
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split('\n');
  const line = lines.find((l) => l.includes("backend 'native'"));
  assert.ok(line, r.stderr);
  assert.match(line, /onnxruntime-node is not installed; install it with 'npm install onnxruntime-node'/);
});

test('without onnxruntime-node: auto says so in its one backend line and trains on wasm', () => {
  const probe = spawnSync(
    process.execPath,
    [
      '--require',
      HIDE,
      '--import',
      'tsx',
      '-e',
      "const { initBackend } = await import('./src/backend/index.ts'); await initBackend('auto', (l) => console.log(l));",
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(probe.status, 0, probe.stderr);
  assert.match(probe.stdout, /^backend: wasm \(.*onnxruntime-node not installed\)$/m);
});
