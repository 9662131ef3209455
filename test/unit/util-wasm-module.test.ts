// src/util/wasm-module.ts: a compiled module's exports are checked against the interface its
// callers use, and every way loading fails is one line that names the file.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';
import { WasmExportError, WasmLoadError, loadWasmModule, type WasmExportSpec } from '../../src/util/wasm-module.ts';
import { tempDir } from '../helpers/temp-dir.ts';

interface Scale {
  memory: WebAssembly.Memory;
  scale(at: number, n: number, factor: number): void;
}

const SPEC: WasmExportSpec<Scale> = { memory: 'memory', scale: ['i32', 'i32', 'f32'] };

const dir = tempDir('medvae-wasm-');

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
