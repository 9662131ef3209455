// The layers of src/ only point down: a folder imports from folders listed before it, never after.
// The order below is the architecture (src/README.md explains it); a new folder must be placed in it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Bottom first. Units on one line share a rank and must not import each other. */
const LAYERS: string[][] = [
  ['src/util'],
  ['src/config'],
  ['src/backend', 'src/metrics'],
  ['src/data', 'src/losses'],
  ['src/models', 'src/optim', 'src/collective'],
  ['src/run'],
  ['src/train'],
  ['src/launch', 'src/eval'],
  ['src/restore', 'src/generate'],
  ['src/report', 'src/web'],
  ['src/cli', 'src/index.ts', 'workers'],
];

function unitOf(path: string): { unit: string; rank: number } | undefined {
  for (const [rank, units] of LAYERS.entries()) {
    const unit = units.find((u) => path === u || path.startsWith(`${u}/`));
    if (unit) return { unit, rank };
  }
  return undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** Relative specifiers of static imports, re-exports and dynamic import() calls. */
function relativeImports(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) found.push(m[1]);
  return found;
}

test('the import scanner sees static, re-exported and dynamic imports', () => {
  const sample = [
    "import { a } from '../x/a.ts';",
    "export { b } from './b.ts';",
    "const c = await import('../../c.ts');",
    "import './side.ts';",
    "import z from 'node:fs';",
  ].join('\n');
  assert.deepEqual(relativeImports(sample), ['../x/a.ts', './b.ts', '../../c.ts', './side.ts']);
});

test('every source folder has a place in the layer order', () => {
  const unplaced = [...sourceFiles('src'), ...sourceFiles('workers')].filter((f) => !unitOf(f));
  assert.deepEqual(unplaced, [], 'add these folders to LAYERS in test/unit/layers.test.ts');
});

test('no import runs from a lower folder to a higher one, or sideways between folders of one rank', () => {
  const uphill: string[] = [];
  for (const file of [...sourceFiles('src'), ...sourceFiles('workers')]) {
    const from = unitOf(file);
    if (!from) continue;
    for (const spec of relativeImports(readFileSync(join(ROOT, file), 'utf8'))) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
      const to = unitOf(target);
      if (!to) {
        uphill.push(`${file} imports ${target}, outside src/ and workers/`);
      } else if (to.unit !== from.unit && to.rank >= from.rank) {
        uphill.push(`${file} (${from.unit}) imports ${target} (${to.unit})`);
      }
    }
  }
  assert.deepEqual(uphill, []);
});
