// Every row of issue 17's table re-tried through the real command line: one clear line naming the
// file, key or flag (exit 1; 2 for usage; 130 after Ctrl-C), no stack, nothing left behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeTinyNpz } from './helpers/tiny-data.ts';
import { latestCheckpoint } from '../src/train/checkpoint.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'medvae.js');
const dir = mkdtempSync(join(tmpdir(), 'medvae-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const npz = join(dir, 'tiny.npz');
writeTinyNpz(npz, { train: 48, val: 8, test: 8 });
const pngs = join(dir, 'pngs');
const train = ['train', '--config', 'configs/smoke.yaml', '--backend', 'wasm', '--log-format', 'plain'];

function medvae(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The failure is the last line, it starts with "error:", and no stack trace was printed. */
function oneLine(r: { status: number | null; stderr: string }, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines.at(-1)!, pattern);
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without --debug');
}

test('--data <folder of PNGs> with a config made for an npz: the format is inferred, as data info does', async () => {
  mkdirSync(pngs);
  for (let i = 0; i < 16; i++) {
    await sharp(Buffer.alloc(32 * 32 * 3, i * 15), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(pngs, `i${i}.png`));
  }
  const r = medvae([...train, '--data', pngs, '--max-steps', '1', '--out', join(dir, 'folder-run')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /data: .*pngs\[train\], 16 images/);
  const info = medvae(['data', 'info', pngs]);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /\(format folder\)\n {2}all: 16 samples/);
});

test('a wrong format names what it expected and what the path looks like; an unreadable path names the formats tried', () => {
  const out = join(dir, 'wrong-format');
  oneLine(
    medvae([...train, '--data', pngs, '--set', 'data.format=medmnist', '--out', out]),
    1,
    /^error: .*pngs: is a folder, but data.format 'medmnist' expects an \.npz file; it looks like format 'folder'/,
  );
  assert.ok(!existsSync(out), 'no run directory for a run that never started');
  const txt = join(dir, 'notes.txt');
  writeFileSync(txt, 'hello');
  oneLine(medvae([...train, '--data', txt, '--out', out]), 1, /^error: .*notes\.txt: .*tried medmnist .*gleason .*folder/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  oneLine(medvae(['data', 'info', empty]), 1, /^error: .*empty: a folder with no dataset .*tried medmnist/);
});

test('data info on a truncated npz or a missing path, data download offline: one line, nothing left behind', () => {
  const cut = join(dir, 'cut.npz');
  writeFileSync(cut, readFileSync(npz).subarray(0, 3000));
  oneLine(medvae(['data', 'info', cut]), 1, /^error: .*cut\.npz: truncated archive/);
  oneLine(medvae(['data', 'info', join(dir, 'nope.npz')]), 1, /^error: .*nope\.npz: no such file or folder.*medvae data download/);
  const target = join(dir, 'downloads', 'here');
  // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
  const r = medvae(['data', 'download', 'chestmnist', '--dir', target], { MEDVAE_MEDMNIST_URL: 'http://127.0.0.1:9/files' });
  oneLine(r, 1, /^error: cannot reach http:\/\/127\.0\.0\.1:9\/files\/chestmnist\.npz\?download=1 \(.*\): check the network/);
  assert.ok(!existsSync(join(dir, 'downloads')), 'no empty output folder');
  assert.match(medvae(['data', 'info', cut, '--debug']).stderr, /\n\s+at /, '--debug shows the stack');
});

test('a run failing before its first step prints nothing about a run directory and leaves none', async () => {
  const broken = join(dir, 'broken');
  mkdirSync(broken);
  for (let i = 0; i < 15; i++) {
    await sharp(Buffer.alloc(32 * 32 * 3, i * 15), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(broken, `i${String(i).padStart(2, '0')}.png`));
  }
  writeFileSync(join(broken, 'bad.png'), 'not a png');
  const out = join(dir, 'strict-run');
  const r = medvae([...train, '--data', broken, '--strict', '--max-steps', '2', '--out', out]);
  oneLine(r, 1, /^error: .*bad\.png/);
  assert.doesNotMatch(r.stderr, /run directory/);
  assert.ok(!existsSync(out), 'no stub run directory');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'train:\n  lr: fast\n');
  const v = medvae(['train', '--config', bad]);
  oneLine(v, 1, /^error: .*bad\.yaml: 'train\.lr' must be a number/);
  assert.doesNotMatch(v.stderr, /run directory/);
});

test('usage mistakes exit 2 with one line naming the flag', () => {
  oneLine(medvae(['train', '--no-such-flag']), 2, /^error: unknown option '--no-such-flag'/);
  oneLine(medvae(['train', '--resume', join(dir, 'no-run')]), 2, /^error: --resume .*no-run: no such run directory or checkpoint/);
  oneLine(
    medvae(['sample', '--run', join(dir, 'folder-run'), '--n', 'x', '--out', join(dir, 's.npz')]),
    2,
    /^error: --n must be a positive integer, got x/,
  );
  oneLine(medvae(['eval', '--run', join(dir, 'folder-run'), '--n', '1']), 2, /^error: --n expects an integer >= 2, got '1'/);
});

test('Ctrl-C: checkpoint, the exact --resume command, exit 130; that command continues the run', async () => {
  const run = join(dir, 'interrupted run');
  const child = spawn(process.execPath, [BIN, ...train, '--data', npz, '--epochs', '3', '--out', run], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/step 2\/3/.test(stderr)) resolve();
    });
  });
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 130, stderr);
  const line = stderr.trim().split('\n').at(-1)!;
  const m = /^interrupted at step (\d+); checkpoint (.+); continue with: npx medvae train --resume '(.+)'$/.exec(line);
  assert.ok(m, line);
  assert.equal(m[3], run);
  assert.equal(m[2], latestCheckpoint(join(run, 'checkpoints')));
  const resumed = medvae(['train', '--resume', m[3]!]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resumed from .*: epoch \\d, step ${m[1]}`));
  assert.match(resumed.stderr, /finished at step 9/);
});
