// Assembles every WebAssembly text file (.wat) under src/ into the binary (.wasm) beside it:
//   npm run build:wasm
// The .wasm files are committed, so neither an install nor a process start needs an assembler
// (wabt is a dev dependency); test/unit/wasm-modules.test.ts fails when one no longer matches its source.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every .wat under src/, as paths relative to the repository root, sorted. */
export function watSources(): string[] {
  return readdirSync(join(ROOT, 'src'), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.wat'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

/** The .wasm path that `wat` (relative to the root) compiles to. */
export function wasmPathOf(wat: string): string {
  return wat.replace(/\.wat$/, '.wasm');
}

/** The binary of `wat` (relative to the root) as wabt assembles it: deterministic, no debug names. */
export async function assemble(wat: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat(wat, readFileSync(join(ROOT, wat), 'utf8'), { simd: true });
  try {
    parsed.validate();
    return new Uint8Array(parsed.toBinary({ write_debug_names: false }).buffer);
  } finally {
    parsed.destroy();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const wat of watSources()) {
    const bytes = await assemble(wat);
    writeFileSync(join(ROOT, wasmPathOf(wat)), bytes);
    console.log(`${wat} -> ${wasmPathOf(wat)} (${bytes.length} bytes)`);
  }
}
