// A wasm backend whose kernels (src/backend/simd/kernels.wasm) fail to load is a broken install:
// `--backend auto` must say so in one line, never carry on with the pure-JS cpu backend. This file
// runs in its own process (node --test), so replacing the WebAssembly.Module constructor for one
// test touches no other test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import '@tensorflow/tfjs-backend-wasm';
import { BackendUnavailableError, initBackend } from '../../src/backend/index.ts';
import { nativePackageState } from '../../src/backend/tfjs-node-install.ts';

const nativeInstalled =
  nativePackageState('@tensorflow/tfjs-node') === 'installed' || nativePackageState('@tensorflow/tfjs-node-gpu') === 'installed';

test(
  nativeInstalled
    ? 'auto without its kernels (skipped: tfjs-node is installed here)'
    : 'auto with a wasm backend whose kernels do not compile throws one line naming kernels.wasm, never picks cpu',
  { skip: nativeInstalled },
  async () => {
    // TF.js's own module initialises first, untouched; only the project's kernels then meet a broken compiler.
    assert.ok(await tf.setBackend('wasm'));
    await tf.ready();
    const realModule = WebAssembly.Module;
    class CorruptModule extends realModule {
      constructor(bytes: BufferSource) {
        super(bytes);
        throw new WebAssembly.CompileError('simulated: section was shorter than expected size');
      }
    }
    WebAssembly.Module = CorruptModule;
    try {
      const lines: string[] = [];
      await assert.rejects(
        initBackend('auto', (line) => lines.push(line)),
        (e: unknown) => {
          assert.ok(e instanceof BackendUnavailableError);
          assert.ok(!e.message.includes('\n'), 'one line');
          assert.match(e.message, /^backend 'auto' is not available: /);
          assert.match(e.message, /src\/backend\/simd\/kernels\.wasm: is not a valid WebAssembly module \(simulated: /);
          assert.match(e.message, /Reinstall medvae, or choose --backend cpu$/);
          return true;
        },
      );
      assert.deepEqual(lines, [], 'no backend was announced');
      assert.notEqual(tf.getBackend(), 'cpu');
    } finally {
      WebAssembly.Module = realModule;
    }
    // the failure was not cached: with the module intact, auto gets wasm (native where onnxruntime-node loads) and its kernels
    const info = await initBackend('auto');
    assert.ok(info.name === 'wasm' || info.name === 'native', info.name);
    assert.ok(tf.getKernel('MedvaeChannelSum', 'wasm'));
  },
);
