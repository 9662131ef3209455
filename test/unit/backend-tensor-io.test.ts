// Reading tensors into a caller's reusable array and making tensors from one, on the wasm backend
// (straight from its heap) and on cpu (through an asynchronous data()), checked against dataSync's values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { readInto, startReadInto, tensorsFrom, totalSize } from '../../src/backend/tensor-io.ts';

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`tensor-io on ${backend}`, () => {
    it('readInto writes every tensor end to end, in order, into the given array', async () => {
      await initBackend(backend);
      const tensors = [
        tf.randomNormal([3, 4], 0, 1, 'float32', 7),
        tf.tensor1d([5]),
        tf.zeros([0]),
        tf.randomUniform([2, 2, 3], -1, 1, 'float32', 8),
      ];
      // A view of the tensor's data, as the step's gradients are after reshapes and slices.
      tensors.push(tf.tidy(() => tf.slice(tf.range(0, 20, 1, 'float32'), [3], [9]).reshape([3, 3])));
      const expected = Float32Array.from(tensors.flatMap((t) => Array.from(t.dataSync())));
      assert.equal(totalSize(tensors), expected.length);
      const target = new Float32Array(expected.length).fill(Number.NaN);
      await readInto(tensors, target);
      assert.deepEqual(target, expected);
      await assert.rejects(() => readInto(tensors, new Float32Array(expected.length + 1)), /target holds 35 floats, the tensors 34/);
      await assert.rejects(() => readInto([tf.tensor1d([1], 'int32')], new Float32Array(1)), /dtype int32, expected float32/);
      // The tensors may go as soon as the read has started: it holds its own reference to their data.
      const early = new Float32Array(expected.length).fill(Number.NaN);
      const started = startReadInto(tensors, early);
      assert.equal(started === undefined, backend === 'wasm', 'wasm copies at once, cpu reads asynchronously');
      tf.dispose(tensors);
      await started;
      assert.deepEqual(early, expected);
    });

    it('tensorsFrom gives tensors that keep their values when the array is overwritten', async () => {
      await initBackend(backend);
      const values = Float32Array.from({ length: 10 }, (_, i) => i + 0.5);
      const parts = tensorsFrom(values, [[2, 2], [0], [3, 2]]);
      values.fill(-1);
      assert.deepEqual(
        parts.map((t) => t.shape),
        [[2, 2], [0], [3, 2]],
      );
      assert.deepEqual(Array.from(parts[0]!.dataSync()), [0.5, 1.5, 2.5, 3.5]);
      assert.deepEqual(Array.from(parts[2]!.dataSync()), [4.5, 5.5, 6.5, 7.5, 8.5, 9.5]);
      tf.dispose(parts);
    });
  });
}
