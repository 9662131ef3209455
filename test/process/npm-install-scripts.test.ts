// npm's install-script policy (package.json allowScripts; npm >= 11.16 warns about every package whose
// install script it does not cover): each package of the lock file with an install script is
// either allowed (it needs its script) or denied, so `npm ci` prints no warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (f: string): Record<string, unknown> => JSON.parse(readFileSync(join(ROOT, f), 'utf8')) as Record<string, unknown>;

test('every package of the lock file with an install script is allowed or denied by name', () => {
  const policy = read('package.json').allowScripts as Record<string, boolean>;
  const packages = read('package-lock.json').packages as Record<string, { hasInstallScript?: boolean }>;
  const withScripts = Object.entries(packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([path]) => path.replace(/^.*node_modules\//, ''));
  assert.ok(withScripts.length > 0);
  for (const name of withScripts) assert.equal(typeof policy[name], 'boolean', `${name} has an install script the policy does not cover`);
  // The native TF.js backends download libtensorflow in their install step: without it they cannot load.
  assert.equal(policy['@tensorflow/tfjs-node'], true);
  assert.equal(policy['@tensorflow/tfjs-node-gpu'], true);
});

test('npm itself finds no unreviewed install script in the installed tree', (t) => {
  const r = spawnSync('npm', ['approve-scripts', '--allow-scripts-pending'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && /Unknown command/i.test(r.stdout + r.stderr)) {
    t.skip(`this npm (${spawnSync('npm', ['-v'], { encoding: 'utf8' }).stdout.trim()}) has no install-script policy`);
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /No packages with unreviewed install scripts/);
});
