// Backend selection on this machine, where the optional TF.js native packages cannot load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { tf } from '../../src/util/tf.ts';
import { BackendUnavailableError, initBackend } from '../../src/backend/index.ts';
import { nativePackageState, unavailableReason } from '../../src/backend/tfjs-node-install.ts';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const nativeInstalled =
  nativePackageState('@tensorflow/tfjs-node') === 'installed' || nativePackageState('@tensorflow/tfjs-node-gpu') === 'installed';
// onnxruntime-node (an optionalDependency) makes auto pick 'native' ahead of wasm.
const ortInstalled = installed('onnxruntime-node');
// What auto says of the two TF.js native packages here (absent, or present without their binding).
const tfjsNodeReasons = `${unavailableReason('@tensorflow/tfjs-node-gpu', 'tfjs-node-gpu')}; ${unavailableReason('@tensorflow/tfjs-node', 'tfjs-node')}`;

test(
  nativeInstalled
    ? 'auto without tfjs-node (skipped: tfjs-node is installed here)'
    : 'auto picks native (or wasm without onnxruntime-node) and logs why the others were skipped',
  { skip: nativeInstalled },
  async () => {
    const lines: string[] = [];
    const info = await initBackend('auto', (line) => lines.push(line));
    // Between the two TF.js packages, the gist of why webgpu found no GPU (which depends on the machine).
    const [gpuReason, nodeReason] = tfjsNodeReasons.split('; ');
    const literal = (text = ''): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const skipped = `${literal(gpuReason)}; webgpu: [^;()]+; ${literal(nodeReason)}`;
    if (ortInstalled) {
      const threads = info.threads ?? 0;
      assert.equal(info.name, 'native');
      assert.equal(info.gpu, false);
      assert.ok(threads >= 1);
      assert.match(info.reason, new RegExp(`^onnxruntime-node, ${threads} threads?; ${skipped}$`));
    } else {
      assert.equal(info.name, 'wasm');
      assert.match(info.reason, new RegExp(`^${skipped}; onnxruntime-node not installed$`));
    }
    assert.deepEqual(lines, [`backend: ${info.name} (${info.reason})`]);
    // native computes on TF.js's wasm backend
    assert.equal(tf.getBackend(), 'wasm');
    // the training kernels came with it
    assert.ok(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm'));
    assert.ok(tf.getKernel(tf.UnsortedSegmentSum, 'wasm'));

    const again = await initBackend('auto', (line) => lines.push(line));
    assert.deepEqual(again, info);
    assert.equal(lines.length, 1, 'a repeated call does not log again');
  },
);

test(
  nativeInstalled
    ? 'explicit tensorflow fails (skipped: tfjs-node is installed here)'
    : 'explicit tensorflow throws a clear error naming what is missing',
  { skip: nativeInstalled },
  async () => {
    const before = tf.getBackend();
    await assert.rejects(initBackend('tensorflow'), (e: unknown) => {
      assert.ok(e instanceof BackendUnavailableError);
      assert.equal(e.requested, 'tensorflow');
      assert.match(e.message, /^backend 'tensorflow' is not available: /);
      assert.ok(e.message.includes(tfjsNodeReasons), e.message);
      assert.match(e.message, /Install @tensorflow\/tfjs-node/);
      return true;
    });
    assert.equal(tf.getBackend(), before, 'a failed choice leaves the active backend alone');
    // not cached as a success: it fails again
    await assert.rejects(initBackend('tensorflow'), BackendUnavailableError);
  },
);

test('explicit cpu and wasm switch the active backend; returning to a choice re-activates it', async () => {
  const lines: string[] = [];
  const cpu = await initBackend('cpu', (line) => lines.push(line));
  assert.deepEqual(cpu, { name: 'cpu', gpu: false, reason: 'requested' });
  assert.equal(tf.getBackend(), 'cpu');
  const wasm = await initBackend('wasm', (line) => lines.push(line));
  assert.deepEqual(wasm, { name: 'wasm', gpu: false, reason: 'requested' });
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(lines, ['backend: cpu (requested)', 'backend: wasm (requested)']);
  await initBackend('cpu');
  assert.equal(tf.getBackend(), 'cpu', 'the cached cpu choice is made active again');
  assert.equal(lines.length, 2);
});
