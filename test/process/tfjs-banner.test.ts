// TF.js's "Hi, looks like you are running TensorFlow.js in Node.js" banner (printed by its cpu
// backend when tfjs-node is not loaded) appears nowhere: not from the commands, not from
// medvae-dist's workers, not from a process that reaches TF.js through src/util/tf.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { srcImport } from '../helpers/src-import.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BANNER = /looks like you are running TensorFlow\.js in Node\.js/;
const dir = mkdtempSync(join(tmpdir(), 'medvae-banner-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const npz = join(dir, 'tiny.npz');
// 8x8 images, batches of 4 and a model of two thin layers: the banner comes with the first tensor
// on the cpu backend, whatever its size, and every op there is plain JavaScript.
writeTinyNpz(npz, { train: 16, val: 4, test: 4, size: 8 });

function run(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const onCpu = "await tf.setBackend('cpu'); console.log(tf.tensor([1, 2]).sum().dataSync()[0]);";

test('a tensor on the cpu backend prints the banner, unless TF.js was loaded through src/util/tf.ts', () => {
  // TF.js required, as src/util/tf.ts does: Node's scan of its CommonJS bundle for an ESM import is
  // half a second of CPU that shows nothing here.
  const plain = run(['-e', `(async () => { const tf = require('@tensorflow/tfjs'); ${onCpu} })();`]);
  assert.equal(plain.status, 0, plain.output);
  assert.match(plain.output, BANNER, 'TF.js prints it by default: this test would see it');
  const { execArgv, specifier } = srcImport('util/tf');
  const quiet = run([...execArgv, '--input-type=module', '-e', `import { tf } from '${specifier}'; ${onCpu}`]);
  assert.equal(quiet.status, 0, quiet.output);
  assert.doesNotMatch(quiet.output, BANNER);
  assert.match(quiet.output, /^3$/m, 'and TF.js computes as before');
});

test('medvae train and medvae-dist on the cpu backend print no banner; medvae-dist itself, which never computes, loads no TF.js', () => {
  const train = [
    ...['--config', 'configs/smoke.yaml', '--data', npz, '--backend', 'cpu', '--max-steps', '1', '--log-format', 'plain'],
    ...['--set', 'model.image_size=8', '--set', 'model.hidden_dims=[4, 8]', '--set', 'model.latent_dim=4', '--set', 'train.batch_size=4'],
    ...['--set', 'train.micro_batch=4', '--set', 'output.sample_grid=4'],
  ];
  const atExit = ['--import', join(ROOT, 'test', 'helpers', 'tfjs-loaded-at-exit.mjs')];
  const one = run([...atExit, join(ROOT, 'bin', 'medvae.js'), 'train', ...train, '--out', join(dir, 'one')]);
  assert.equal(one.status, 0, one.output);
  assert.match(one.output, /stopped \(max steps\) at step 1/);
  assert.doesNotMatch(one.output, BANNER);
  assert.match(one.output, /^tfjs modules loaded by this process: [1-9]\d*$/m, 'a process that computes is seen loading TF.js');
  const two = run([...atExit, join(ROOT, 'bin', 'medvae-dist.js'), '--cpu-workers', '2', ...train, '--out', join(dir, 'two')]);
  assert.equal(two.status, 0, two.output);
  assert.match(two.output, /with 2 workers/);
  assert.doesNotMatch(two.output, BANNER, 'nor from the workers');
  // The launcher: the workers compute, it only starts, watches and reports them.
  assert.match(two.output, /^tfjs modules loaded by this process: 0$/m);
});
