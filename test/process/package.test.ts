// The package as a user gets it: `npm pack` holds the compiled library, the commands, the bundled
// data and configs, and nothing of the checkout's tests, sources or runs; installed from the tarball
// into an empty project, it is imported by plain Node (no tsx), type-checks, and trains.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { compiledIsCurrent } from '../../bin/cli-entry.js';

const ROOT = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'medvae-pack-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string, timeout = 300_000): string {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' },
  });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

let tarball = '';
let files: string[] = [];

before(() => {
  // npm pack builds lib/ (the prepare script) unless it is newer than every source: `npm run
  // test:process` builds it first, and a second build here would swap lib/ under the commands that
  // the other tests of the tier are running from it.
  const built = compiledIsCurrent();
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work, ...(built ? ['--ignore-scripts'] : [])], ROOT)) as {
    filename: string;
    files: { path: string }[];
  }[];
  tarball = join(work, packed!.filename);
  files = packed!.files.map((f) => f.path);
});

test('npm pack ships the library, commands, data and configs, and no tests, sources or runs', () => {
  for (const needed of [
    'lib/src/index.js',
    'lib/src/index.d.ts',
    'lib/src/cli/medvae.js',
    'lib/workers/dist-worker.js',
    'lib/workers/decode-worker.js',
    'bin/medvae.js',
    'bin/medvae-dist.js',
    'bin/cli-entry.js',
    'data/retinamnist.npz',
    'configs/vae_retinamnist.yaml',
    'LICENSE',
    'README.md',
  ]) {
    assert.ok(files.includes(needed), `${needed} missing from the tarball`);
  }
  const unwanted = files.filter(
    (f) => /^(test|bench|runs|docs|src|scripts|\.ci|node_modules)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')),
  );
  assert.deepEqual(unwanted, []);
});

test('installed from the tarball, plain Node imports it, tsc checks a script against its types, and it trains two steps', () => {
  const app = join(work, 'app');
  run('mkdir', ['-p', app], work);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // From npm's cache (the project's own `npm ci` filled it); no install scripts are needed to import it.
  run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-save', tarball], app, 600_000);
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx is a development tool, not a dependency');
  const data = join(app, 'tiny.npz');
  writeTinyNpz(data, { train: 16, val: 4, test: 4, size: 16 });
  const script = `
import { initBackend, loadConfig, train, loadRun, sample, reconstruct, readImages, openDataset } from 'medvae';
const config = loadConfig({ sets: ['data.path=${data}', 'model.image_size=16', 'model.hidden_dims=[4, 8]', 'model.latent_dim=4', 'train.batch_size=8', 'train.max_steps=2', 'train.backend=wasm', 'output.metrics_port=0'] });
const info = await initBackend(config.train.backend);
const result = await train({ config, runDir: 'run' });
const loaded = await loadRun('run');
const samples = await sample(loaded, { n: 3, seed: 1 });
const real = await readImages(config, 'test', 2);
const rec = await reconstruct(loaded, { data: real.images, n: real.n, size: real.size, channels: real.channels });
// The default config's data.path names the package's bundled RetinaMNIST, found from any working directory.
const bundled = await openDataset(loadConfig().data, 'test');
console.log(JSON.stringify({ bundledTest: bundled.length, backend: info.name, step: result.state.step, stoppedBy: result.stoppedBy, samples: samples.pixels.length, recN: rec.n, recLength: rec.data.length }));
`;
  writeFileSync(join(app, 'main.ts'), script);
  writeFileSync(join(app, 'main.mjs'), script);
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  run(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--skipLibCheck',
      'main.ts',
    ],
    app,
  );
  const out = JSON.parse(run(process.execPath, ['main.mjs'], app).trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.deepEqual(out, {
    bundledTest: 400,
    backend: 'wasm',
    step: 2,
    stoppedBy: 'max_steps',
    samples: 3 * 16 * 16 * 3,
    recN: 2,
    recLength: 2 * 16 * 16 * 3,
  });
  assert.ok(existsSync(join(app, 'run', 'config.yaml')));
  assert.match(readFileSync(join(app, 'node_modules', 'medvae', 'bin', 'medvae.js'), 'utf8'), /runCli/);
});
