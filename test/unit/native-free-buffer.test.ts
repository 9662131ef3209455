// The copies onnxruntime-node's run() returns of outputs the kernels already have in place are
// freed at once (src/backend/native/free-buffer.ts), not left for a garbage collection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { freeArrayBuffer } from '../../src/backend/native/free-buffer.ts';
import { nativeUnavailable } from '../helpers/native.ts';

const MIB = 2 ** 20;

test('freeArrayBuffer frees a buffer at once and leaves it detached; a WebAssembly memory it leaves alone', () => {
  const buffer = new ArrayBuffer(32 * MIB);
  new Uint8Array(buffer).fill(7);
  const before = process.memoryUsage().arrayBuffers;
  assert.equal(freeArrayBuffer(buffer), true);
  assert.equal(buffer.byteLength, 0);
  assert.ok(before - process.memoryUsage().arrayBuffers >= 32 * MIB, 'its 32 MiB went back at once');

  const memory = new WebAssembly.Memory({ initial: 1 });
  new Uint8Array(memory.buffer)[0] = 5;
  assert.equal(freeArrayBuffer(memory.buffer), false);
  assert.equal(new Uint8Array(memory.buffer)[0], 5);
});

test('native kernels leave no copy of their outputs behind', { skip: nativeUnavailable() }, async () => {
  await initBackend('native', undefined, { threads: 1 });
  // An 8 MiB output (2 x 64 x 64 x 256 floats), computed ten times.
  const x = tf.randomUniform([2, 64, 64, 32], -1, 1, 'float32', 1);
  const filter = tf.randomUniform([3, 3, 32, 256], -1, 1, 'float32', 2);
  tf.tidy(() => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same').dataSync());
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 10; i++) tf.tidy(() => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'));
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 2 * MIB, `array buffers grew by ${(grown / MIB).toFixed(1)} MiB over ten 8 MiB outputs`);
  tf.dispose([x, filter]);
  await initBackend('wasm');
});
