// A TF.js native package present without its binding (install script skipped or failed offline)
// counts as no backend: auto and medvae-dist must not try to load it or place workers on GPUs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { nativePackageState } from '../../src/backend/tfjs-node-install.ts';

test('absent, present without its native binding, and installed are told apart from the files', () => {
  const root = mkdtempSync(join(tmpdir(), 'medvae-tfjs-node-'));
  try {
    const from = pathToFileURL(join(root, 'app.js')).href;
    assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'absent');
    const pkg = join(root, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
    mkdirSync(join(pkg, 'lib', 'napi-v8'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', main: 'dist/index.js' }));
    assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'no-binding');
    writeFileSync(join(pkg, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
    assert.equal(nativePackageState('@tensorflow/tfjs-node-gpu', from), 'installed');
    assert.equal(nativePackageState('@tensorflow/tfjs-node', from), 'absent');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
