// `npm run build` (run by `npm ci` as `prepare`, and before `npm pack`): compiles src/ and workers/
// into lib/ (JavaScript, declaration files, source maps) and copies beside them the non-TypeScript
// files the code loads at run time. It builds into a scratch folder and swaps it in whole, so an
// interrupted or failed build never leaves a half-written lib/ for bin/ to run.
//
// `--if-stale` builds only when a file under src/ or workers/ changed since lib/ was written, the
// rule by which bin/ chooses lib/ over the sources: `npm test` starts with it, and after `npm ci`
// (whose prepare step builds) the suite does not wait for a second identical build.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compiledIsCurrent } from '../bin/cli-entry.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.argv.includes('--if-stale') && compiledIsCurrent()) process.exit(0);
const partial = join(root, 'lib.partial');
const lib = join(root, 'lib');
/** Run-time assets that live in src/ next to the code that loads them. */
const ASSETS = new Set(['.wasm', '.wat']);

rmSync(partial, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', partial], { stdio: 'inherit' });
} catch {
  rmSync(partial, { recursive: true, force: true });
  process.stderr.write('build: tsc failed (see above); lib/ was left as it was\n');
  process.exit(1);
}
cpSync(join(root, 'src'), join(partial, 'src'), { recursive: true, filter: (src) => extname(src) === '' || ASSETS.has(extname(src)) });
// The web explorer's page script (medvae export-web), bundled once here: esbuild is a development
// dependency, so an installed package reads this file instead of bundling.
try {
  const { bundleExplorer } = await import(pathToFileURL(join(partial, 'src', 'web', 'bundle-page.js')).href);
  writeFileSync(join(partial, 'src', 'web', 'explorer.js'), await bundleExplorer());
} catch (e) {
  rmSync(partial, { recursive: true, force: true });
  process.stderr.write(`build: bundling the web explorer failed (${e.message}); lib/ was left as it was\n`);
  process.exit(1);
}
if (existsSync(lib)) rmSync(lib, { recursive: true });
renameSync(partial, lib);
