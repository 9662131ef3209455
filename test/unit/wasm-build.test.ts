// Every WebAssembly module under src/ is committed both as its source (.wat) and as the binary that
// processes load (.wasm), so that neither an install nor a start-up needs an assembler. This checks
// that each binary is exactly what `npm run build:wasm` makes of its source today.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, assemble, wasmPathOf, watSources } from '../../scripts/build-wasm.ts';

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
