// The wasm kernel registry of src/backend/wasm-kernels: one list of additions and one of overrides
// (register-all.ts), each kernel in the file named after it, and TF.js's own kernel kept for each
// override.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import {
  registerWasmTrainingKernels,
  stockWasmKernel,
  wasmKernelAdditions,
  wasmKernelOverrides,
} from '../../src/backend/wasm-kernels/register-all.ts';

const FOLDER = new URL('../../src/backend/wasm-kernels/', import.meta.url);

/** Files of the folder that build or register kernels rather than being one. */
const HELPERS = ['compose.ts', 'conv-util.ts', 'kernel-names.ts', 'register-all.ts', 'simd-kernel.ts', 'stock-fallback.ts'];

/** The file a kernel lives in: its name without our Medvae prefix, in kebab-case (Conv2DBackpropFilter: conv2d-backprop-filter.ts). */
function fileOf(kernelName: string): string {
  return `${kernelName
    .replace(/^Medvae/, '')
    .split(/(?<=[a-z]|\d[A-Z])(?=[A-Z])/)
    .join('-')
    .toLowerCase()}.ts`;
}

before(async () => {
  await initBackend('wasm');
});

test('kebab-case file names follow the kernel names', () => {
  assert.equal(fileOf('Conv2DBackpropFilter'), 'conv2d-backprop-filter.ts');
  assert.equal(fileOf('DepthwiseConv2dNativeBackpropInput'), 'depthwise-conv2d-native-backprop-input.ts');
  assert.equal(fileOf('MedvaeCol2Im'), 'col2im.ts');
  assert.equal(fileOf('BatchMatMul'), 'batch-mat-mul.ts');
});

test('each kernel is exported by the file named after it, and every other file is a known helper', async () => {
  const configs = [...wasmKernelAdditions, ...wasmKernelOverrides];
  for (const config of configs) {
    const module = (await import(new URL(fileOf(config.kernelName), FOLDER).href)) as Record<string, unknown>;
    assert.ok(Object.values(module).includes(config), `${fileOf(config.kernelName)} exports the ${config.kernelName} kernel`);
  }
  const kernelFiles = new Set(configs.map((c) => fileOf(c.kernelName)));
  const files = readdirSync(FOLDER).filter((f) => f.endsWith('.ts'));
  assert.deepEqual(
    files.filter((f) => !kernelFiles.has(f) && !HELPERS.includes(f)),
    [],
    'a file that is neither a listed kernel nor a helper',
  );
  assert.equal(new Set(configs.map((c) => c.kernelName)).size, configs.length, 'a kernel listed twice');
});

test('additions are registered; each override replaced a stock kernel that is kept; registering again changes nothing', () => {
  for (const config of wasmKernelAdditions) {
    assert.equal(tf.getKernel(config.kernelName, 'wasm'), config, config.kernelName);
    assert.equal(stockWasmKernel(config.kernelName), undefined, `${config.kernelName} has no stock kernel`);
  }
  for (const config of wasmKernelOverrides) {
    assert.equal(tf.getKernel(config.kernelName, 'wasm'), config, config.kernelName);
    const stock = stockWasmKernel(config.kernelName);
    assert.ok(stock !== undefined && stock !== config, `the stock ${config.kernelName} was kept`);
  }
  registerWasmTrainingKernels();
  for (const config of [...wasmKernelAdditions, ...wasmKernelOverrides]) assert.equal(tf.getKernel(config.kernelName, 'wasm'), config);
});

test('an override hands the cases it does not take to the stock kernel, and only those', () => {
  const stock = stockWasmKernel(tf.Identity);
  assert.ok(stock);
  const original = stock.kernelFunc;
  let stockCalls = 0;
  stock.kernelFunc = (args) => {
    stockCalls++;
    return original(args);
  };
  try {
    // Identity shares float buffers, and leaves strings to TF.js's kernel.
    const floats = tf.tensor1d([1, 2]);
    assert.deepEqual(
      tf.tidy(() => [...tf.clone(floats).dataSync()]),
      [1, 2],
    );
    assert.equal(stockCalls, 0);
    const text = tf.tensor1d(['a', 'b'], 'string');
    assert.deepEqual(
      tf.tidy(() => tf.clone(text).dataSync()),
      ['a', 'b'],
    );
    assert.equal(stockCalls, 1);
    tf.dispose([floats, text]);
  } finally {
    stock.kernelFunc = original;
  }
});
