// The page's script, one file: page/main.ts and what it imports of the project, TF.js's core and
// layers APIs and its browser backends, and the wasm backend's binaries gzipped inside it. Bundled
// by esbuild: `npm run build` writes it once into lib/ (scripts/build.mjs); a checkout running from
// the sources bundles it afresh on every export, so the page always matches the code beside it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'esbuild';
import { ownModule, RUNNING_FROM_SOURCE } from '../util/module-path.ts';

/** Where `npm run build` leaves the bundle, beside this module in lib/. */
const PREBUILT = new URL('./explorer.js', import.meta.url);

const WASM_MODULE = 'medvae:tfjs-wasm-binaries';

function wasmBinariesModule(): string {
  const dist = join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  const packed = (name: string): string => JSON.stringify(gzipSync(readFileSync(join(dist, name)), { level: 9 }).toString('base64'));
  return [
    `export const WASM_SIMD_GZ_BASE64 = ${packed('tfjs-backend-wasm-simd.wasm')};`,
    `export const WASM_PLAIN_GZ_BASE64 = ${packed('tfjs-backend-wasm.wasm')};`,
  ].join('\n');
}

/** The virtual wasm-binaries module, and the browser stand-ins for the Node-only wasm module loader and TF.js loader. */
function pagePlugin(): Plugin {
  const stub = fileURLToPath(ownModule('./page/wasm-module.browser.ts', import.meta.url));
  const tfjs = fileURLToPath(ownModule('./page/tfjs-browser.ts', import.meta.url));
  return {
    name: 'medvae-page',
    setup(build) {
      build.onResolve({ filter: /^medvae:tfjs-wasm-binaries$/ }, () => ({ path: WASM_MODULE, namespace: 'medvae' }));
      build.onLoad({ filter: /.*/, namespace: 'medvae' }, () => ({ contents: wasmBinariesModule(), loader: 'js' }));
      build.onResolve({ filter: /\/util\/wasm-module\.(ts|js)$/ }, () => ({ path: stub }));
      build.onResolve({ filter: /(^|\/)tf\.(ts|js)$/ }, (args) =>
        /\/util\/tf\.(ts|js)$/.test(join(args.resolveDir, args.path)) ? { path: tfjs } : undefined,
      );
    },
  };
}

/** Bundles the page's script with esbuild (a development dependency: present in a checkout and at build time). */
export async function bundleExplorer(): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(ownModule('./page/main.ts', import.meta.url))],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    write: false,
    legalComments: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [pagePlugin()],
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** The page's script: the one built into lib/ when running compiled, a fresh bundle when running from the sources. */
export async function explorerScript(): Promise<string> {
  if (RUNNING_FROM_SOURCE) return bundleExplorer();
  try {
    return readFileSync(PREBUILT, 'utf8');
  } catch {
    throw new Error(`${fileURLToPath(PREBUILT)} is missing: this installation was built without the web explorer; run npm run build`);
  }
}
