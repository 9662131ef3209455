// Running out of the wasm backend's 4 GB heap: refused allocations become WasmOutOfMemoryError
// (and leave the backend usable), failures inside wasm are reported as the process being done.
// Filling the heap is cheap: untouched wasm pages are address space, not resident memory.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import {
  WASM_HEAP_LIMIT_BYTES,
  WasmOutOfMemoryError,
  WasmTrapError,
  backendMemoryBytes,
  initBackend,
  translateBackendError,
  withBackendErrors,
} from '../../src/backend/index.ts';

interface WasmBackendInternals {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

const internals = (): WasmBackendInternals => tf.backend() as unknown as WasmBackendInternals;

/** Allocates float32 buffers (largest first) until the heap refuses even 64 KB; returns them. */
function fillHeap(): tf.TensorInfo[] {
  const held: tf.TensorInfo[] = [];
  for (let bytes = 2 ** 30; bytes >= 2 ** 16;) {
    try {
      held.push(internals().makeOutput([bytes / 4], 'float32'));
    } catch (e) {
      assert.ok(e instanceof WasmOutOfMemoryError, `refused allocation threw ${String(e)}`);
      bytes /= 2;
    }
  }
  return held;
}

before(async () => {
  await initBackend('wasm');
});

describe('translateBackendError', () => {
  test('emscripten abort and memory RangeErrors on wasm become WasmOutOfMemoryError naming the context', () => {
    const abort = translateBackendError(new WebAssembly.RuntimeError('Aborted(). Build with -sASSERTIONS for more info.'), 'train step 3');
    assert.ok(abort instanceof WasmOutOfMemoryError);
    assert.equal(abort.moduleAborted, true);
    assert.match(
      abort.message,
      /^wasm backend ran out of its 4 GB memory during train step 3; lower train\.micro_batch \(e\.g\. 4 at 256x256; train\.micro_batch: auto picks it from train\.memory_budget_mb\) or use more workers/,
    );
    assert.match(abort.message, /restart the process$/);
    const range = translateBackendError(new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded'), 'eval');
    assert.ok(range instanceof WasmOutOfMemoryError);
    assert.equal(range.context, 'eval');
  });

  test('other errors pass through unchanged; non-errors are wrapped', () => {
    const shapeError = new Error('Error in conv2d: depth mismatch');
    assert.equal(translateBackendError(shapeError, 'step'), shapeError);
    const bounds = new WebAssembly.RuntimeError('memory access out of bounds');
    assert.ok(backendMemoryBytes() < 0.9 * WASM_HEAP_LIMIT_BYTES);
    const trap = translateBackendError(bounds, 'step 7');
    assert.ok(trap instanceof WasmTrapError, 'a trap with a roomy heap is reported as a trap, not as running out of memory');
    assert.equal(trap.cause, bounds);
    assert.match(
      trap.message,
      /^wasm backend failed during step 7: memory access out of bounds \(wasm heap \d+ MB\)\. .*lower train\.micro_batch.*restart the process/,
    );
    const wrapped = translateBackendError('boom', 'loading');
    assert.equal(wrapped.message, 'loading: boom');
  });

  test('on the cpu backend aborts are not translated and memory is the live tensor bytes', async () => {
    await initBackend('cpu');
    try {
      const abort = new WebAssembly.RuntimeError('Aborted()');
      assert.equal(translateBackendError(abort, 'x'), abort);
      const before = backendMemoryBytes();
      const held = tf.zeros([1000]);
      assert.equal(backendMemoryBytes() - before, 4000);
      held.dispose();
    } finally {
      await initBackend('wasm');
    }
  });
});

describe('a full wasm heap', () => {
  test('a refused tensor allocation throws WasmOutOfMemoryError and the backend stays usable', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const held = fillHeap();
    try {
      assert.ok(backendMemoryBytes() > 0.99 * WASM_HEAP_LIMIT_BYTES, `heap ${backendMemoryBytes()}`);
      assert.ok(backendMemoryBytes() <= WASM_HEAP_LIMIT_BYTES);
      const failure = await withBackendErrors('decoding batch 7', () => tf.zeros([1024, 1024]).dataSync()).then(
        () => assert.fail('the allocation should have been refused'),
        (e: unknown) => e,
      );
      assert.ok(failure instanceof WasmOutOfMemoryError);
      assert.equal(failure.moduleAborted, false);
      assert.match(failure.message, /during decoding batch 7 \(allocating a 4 MB tensor\); lower train\.micro_batch/);
      assert.equal(tf.memory().numTensors, tensorsBefore, 'the refused tensor is not left tracked');
    } finally {
      for (const info of held) internals().disposeData(info.dataId);
    }
    const sum = tf.sum(tf.ones([1000]));
    assert.equal((await sum.data())[0], 1000, 'ops run again once memory is freed');
    sum.dispose();
  });

  // Last in the file: afterwards this process's wasm module is not to be trusted.
  test('a failed allocation inside wasm code is reported as fatal for the process', () => {
    const x = tf.randomNormal([1, 2, 2, 256]) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, 256, 256]) as tf.Tensor4D;
    const held = fillHeap();
    // room for the 4 KB output, none for XNNPACK's 2.3 MB of packed weights
    internals().disposeData((held.pop() as tf.TensorInfo).dataId);
    let thrown: unknown;
    try {
      tf.conv2d(x, filter, 1, 'same').dispose();
    } catch (e) {
      thrown = e;
    } finally {
      for (const info of held) internals().disposeData(info.dataId);
      tf.dispose([x, filter]);
    }
    assert.ok(thrown !== undefined, 'the conv could not have succeeded without memory');
    const translated = translateBackendError(thrown, 'train step 1');
    assert.ok(translated instanceof WasmOutOfMemoryError, `got ${String(thrown)}`);
    assert.equal(translated.moduleAborted, true);
  });
});
