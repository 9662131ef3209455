// The project's WebAssembly modules: each committed .wasm is its .wat assembled today, byte for
// byte; loadWasmModule checks a module's exports and names what is wrong in one line; and a wasm
// backend whose kernels (src/backend/simd/kernels.wasm) fail to compile makes `--backend auto` say
// so in one line, never fall back to cpu. One process for all, as a process costs about a second to
// start: each describe block below keeps its state to itself. backend-wasm-load checks the first
// load of the SIMD kernels and the first `auto` choice in a process, so no other block in this file
// may load a backend or those kernels.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';
import '@tensorflow/tfjs-backend-wasm';
import { loadWasmModule, WasmExportError, type WasmExportSpec, WasmLoadError } from '../../src/util/wasm-module.ts';
import { tf } from '../../src/util/tf.ts';
import { BackendUnavailableError, initBackend } from '../../src/backend/index.ts';
import { nativePackageState } from '../../src/backend/tfjs-node-install.ts';
import { assemble, ROOT, wasmPathOf, watSources } from '../../scripts/build-wasm.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('wasm-build: every .wasm is its .wat assembled', () => {
  // Every WebAssembly module under src/ is committed both as its source (.wat) and as the binary that
  // processes load (.wasm), so that neither an install nor a start-up needs an assembler. This checks
  // that each binary is exactly what `npm run build:wasm` makes of its source today.

  test('the SIMD kernels and the all-reduce kernel are among the sources', () => {
    const sources = watSources();
    assert.ok(sources.includes(join('src', 'backend', 'simd', 'kernels.wat')), sources.join(', '));
    assert.ok(sources.includes(join('src', 'collective', 'reduce-kernel.wat')), sources.join(', '));
  });

  for (const wat of watSources()) {
    test(`${wasmPathOf(wat)} is ${wat} assembled, byte for byte`, async () => {
      const wasm = join(ROOT, wasmPathOf(wat));
      assert.ok(existsSync(wasm), `${wasmPathOf(wat)} is missing: run npm run build:wasm and commit it`);
      const built = Buffer.from(await assemble(wat));
      assert.ok(built.equals(readFileSync(wasm)), `${wasmPathOf(wat)} differs from its source: run npm run build:wasm and commit it`);
    });
  }

  test('every .wasm under src/ has its .wat source', () => {
    const binaries = readdirSync(join(ROOT, 'src'), { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.wasm'))
      .map((e) => relative(ROOT, join(e.parentPath, e.name)));
    const orphans = binaries.filter((wasm) => !existsSync(join(ROOT, wasm.replace(/\.wasm$/, '.wat'))));
    assert.deepEqual(orphans, []);
  });
});

describe('util-wasm-module: loadWasmModule', () => {
  // src/util/wasm-module.ts: a compiled module's exports are checked against the interface its
  // callers use, and every way loading fails is one line that names the file.

  interface Scale {
    memory: WebAssembly.Memory;
    scale(at: number, n: number, factor: number): void;
  }

  const SPEC: WasmExportSpec<Scale> = { memory: 'memory', scale: ['i32', 'i32', 'f32'] };

  let dir: string;
  before(() => {
    dir = tempDir('medvae-wasm-');
  });

  /** Assembles `wat` into dir/name.wasm and returns its URL. */
  async function built(name: string, wat: string): Promise<URL> {
    const wabt = await wabtInit();
    const parsed = wabt.parseWat(`${name}.wat`, wat);
    try {
      const path = join(dir, `${name}.wasm`);
      writeFileSync(path, parsed.toBinary({}).buffer);
      return pathToFileURL(path);
    } finally {
      parsed.destroy();
    }
  }

  const SCALE_BODY = `
  (func (export "scale") (param $at i32) (param $n i32) (param $factor f32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (f32.store (local.get $at) (f32.mul (f32.load (local.get $at)) (local.get $factor)))
      (local.set $at (i32.add (local.get $at) (i32.const 4)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next))))`;

  /** Asserts that `f` throws an error of class `kind` whose message is one line matching `pattern`. */
  function throwsOneLine(f: () => unknown, kind: typeof WasmLoadError, pattern: RegExp): void {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof kind, `${String(e)} is a ${kind.name}`);
      assert.equal((e as Error).name, kind.name);
      assert.ok(!(e as Error).message.includes('\n'), 'one line');
      assert.match((e as Error).message, pattern);
      return true;
    });
  }

  describe('loadWasmModule', () => {
    let urls: Record<string, URL>;
    before(async () => {
      urls = {
        good: await built('good', `(module (memory (export "memory") 1) ${SCALE_BODY})`),
        // a helper import before it shifts the function index space: signatures must still be read right
        imported: await built('imported', `(module (import "env" "log" (func (param i32))) (memory (export "memory") 1) ${SCALE_BODY})`),
        missing: await built('missing', `(module (memory 1) ${SCALE_BODY})`),
        wrongKind: await built('wrong-kind', `(module (memory 1) (global (export "memory") i32 (i32.const 0)) ${SCALE_BODY})`),
        wrongParams: await built(
          'wrong-params',
          `(module (memory (export "memory") 1)
        (func (export "scale") (param i32) (param i32) (param f64)))`,
        ),
        returns: await built(
          'returns',
          `(module (memory (export "memory") 1)
        (func (export "scale") (param i32) (param i32) (param f32) (result i32) (i32.const 0)))`,
        ),
      };
      writeFileSync(join(dir, 'garbage.wasm'), 'not a module');
    });

    test('a matching module instantiates, and its functions run', () => {
      for (const url of [urls.good, urls.imported]) {
        const scale = loadWasmModule(url, 'Scale', SPEC).instantiate({ env: { log: () => undefined } });
        const floats = new Float32Array(scale.memory.buffer, 0, 3);
        floats.set([1, 2, 3]);
        scale.scale(0, 3, 2);
        assert.deepEqual([...floats], [2, 4, 6]);
      }
    });

    test('a missing export, another kind, other parameters or a result are WasmExportErrors naming each', () => {
      throwsOneLine(
        () => loadWasmModule(urls.missing, 'Scale', SPEC),
        WasmExportError,
        /missing\.wasm: does not match Scale: export 'memory' is missing$/,
      );
      throwsOneLine(() => loadWasmModule(urls.wrongKind, 'Scale', SPEC), WasmExportError, /export 'memory' is a global, expected a memory/);
      throwsOneLine(
        () => loadWasmModule(urls.wrongParams, 'Scale', SPEC),
        WasmExportError,
        /export 'scale' is \(i32, i32, f64\), expected \(i32, i32, f32\)/,
      );
      throwsOneLine(
        () => loadWasmModule(urls.returns, 'Scale', SPEC),
        WasmExportError,
        /export 'scale' is \(i32, i32, f32\) -> \(i32\), expected \(i32, i32, f32\)/,
      );
    });

    test('an absent file, bytes that are no module, and a failed link are WasmLoadErrors', () => {
      throwsOneLine(
        () => loadWasmModule(pathToFileURL(join(dir, 'absent.wasm')), 'Scale', SPEC),
        WasmLoadError,
        /absent\.wasm: cannot be read \(ENOENT\); it is built from its \.wat by 'npm run build:wasm'$/,
      );
      throwsOneLine(
        () => loadWasmModule(pathToFileURL(join(dir, 'garbage.wasm')), 'Scale', SPEC),
        WasmLoadError,
        /garbage\.wasm: is not a valid WebAssembly module \(.+\); rebuild it with 'npm run build:wasm'$/,
      );
      const imported = loadWasmModule(urls.imported, 'Scale', SPEC);
      throwsOneLine(() => imported.instantiate({}), WasmLoadError, /imported\.wasm: cannot be instantiated \(.+\)$/);
    });

    test('the spec is typed by the interface: one entry per member, one type per parameter', () => {
      // @ts-expect-error scale takes three parameters
      const short: WasmExportSpec<Scale> = { memory: 'memory', scale: ['i32', 'i32'] };
      // @ts-expect-error every member needs an entry
      const partial: WasmExportSpec<Scale> = { scale: ['i32', 'i32', 'f32'] };
      assert.ok(short && partial);
    });
  });
});

describe('backend-wasm-load: a wasm backend whose kernels fail to load', () => {
  // A wasm backend whose kernels (src/backend/simd/kernels.wasm) fail to load is a broken install:
  // `--backend auto` must say so in one line, never carry on with the pure-JS cpu backend. The tests
  // of a file run one at a time, so replacing the WebAssembly.Module constructor for one test
  // touches no other test.

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
});
