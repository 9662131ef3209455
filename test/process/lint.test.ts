// The tree passes `npm run lint` (ESLint, then Prettier --check with .prettierrc.json): CI runs only
// `npm test`, so this test is where CI checks formatting and lint, once. `npm run format` fixes
// what Prettier lists. Both tools keep a cache in node_modules/.cache, so a re-run reads only
// files that changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

test('every source, test, bench and config file passes ESLint and is formatted by Prettier (npm run lint)', () => {
  const r = spawnSync('npm', ['run', '--silent', 'lint'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `npm run lint failed (npm run format fixes formatting):\n${r.stdout}${r.stderr}`);
});
