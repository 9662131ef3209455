// The tree is formatted by Prettier (the settings in .prettierrc.json): CI runs this test, so an
// unformatted file fails the build. `npm run format` fixes what it lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

test('every source, test, bench and config file is formatted by Prettier', () => {
  const prettier = createRequire(join(ROOT, 'package.json')).resolve('prettier/bin/prettier.cjs');
  const r = spawnSync(process.execPath, [prettier, '--check', '--log-level', 'warn', '.'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `not formatted (run npm run format):\n${r.stdout}${r.stderr}`);
});
