// Every row of issue 17's table re-tried through the command line: one clear line naming the
// file, key or flag (exit 1; 2 for usage; 130 after Ctrl-C), no stack, nothing left behind. Most
// run in this process through the commands' commander wiring (medvaeInProcess), where a command
// that starts a backend would leave one in this process; real `medvae` processes for what only a
// process shows: each exit code, commander's own usage errors, training, medvae-dist, Ctrl-C, and
// what a process loads (no TF.js for --help or a usage error).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tf } from '../../src/util/tf.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { BIN, ROOT, medvaeInProcess as medvae, medvaeProcess, type CliResult } from '../helpers/medvae-cli.ts';
import { latestCheckpoint } from '../../src/run/checkpoint.ts';

const dir = mkdtempSync(join(tmpdir(), 'medvae-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const npz = join(dir, 'tiny.npz');
writeTinyNpz(npz, { train: 48, val: 8, test: 8 });
const pngs = join(dir, 'pngs');
const train = ['train', '--config', 'configs/smoke.yaml', '--backend', 'wasm', '--log-format', 'plain'];

/** Preloaded into a process, it says at exit how many of TF.js's modules the process loaded. */
const TFJS_AT_EXIT = ['--import', join(ROOT, 'test', 'helpers', 'tfjs-loaded-at-exit.mjs')];
const TFJS_LINE = /^tfjs modules loaded by this process: (\d+)\n/m;

/** A process with TFJS_AT_EXIT: its result without that line, and the count the line gave. */
function tfjsModules(r: CliResult): { result: CliResult; loaded: number } {
  const line = TFJS_LINE.exec(r.stderr);
  assert.ok(line, `no count of TF.js's modules in: ${r.stderr}`);
  return { result: { ...r, stderr: r.stderr.replace(TFJS_LINE, '') }, loaded: Number(line[1]) };
}

/** `medvae-dist ARGS` in a process that counts the TF.js modules it loads: the launcher itself never computes. */
function medvaeDist(args: string[]): CliResult {
  const { result, loaded } = tfjsModules(medvaeProcess(args, { bin: join(ROOT, 'bin', 'medvae-dist.js'), execArgv: TFJS_AT_EXIT }));
  assert.equal(loaded, 0, `medvae-dist ${args.join(' ')} loaded TF.js`);
  return result;
}

/**
 * Refused before the backend starts: no "backend:" line, and no TF.js backend started in this
 * process (no command here that runs in-process gets that far: the training runs are processes).
 */
function noBackend(r: CliResult, what: string): void {
  assert.doesNotMatch(r.stderr, /^backend:/m, what);
  assert.deepEqual(Object.keys(tf.engine().registry), [], `${what}: a TF.js backend was started`);
}

/** The failure is the last line, it starts with "error:", and no stack trace was printed. */
function oneLine(r: CliResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines.at(-1)!, pattern);
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without --debug');
}

const interruptedRun = join(dir, 'interrupted run');
/** Training on the folder of PNGs, a real process, stopped by Ctrl-C in its second step; its newest checkpoint then. */
let interrupted: { code: number | null; stderr: string; checkpoint: string | undefined };
/** `medvae train --resume` of that run: the command it printed, as the Ctrl-C test checks. */
let resumed: CliResult;
/** TF.js modules the resumed training loaded: what TFJS_AT_EXIT reports of a process that computes. */
let resumedTfjs: number;

// A folder of 48 PNGs, which several tests give as --data, and one run on it that several tests
// read: 2 epochs of 3 steps, interrupted at the second step and resumed to its end.
before(async () => {
  mkdirSync(pngs);
  for (let i = 0; i < 48; i++) {
    await sharp(Buffer.alloc(32 * 32 * 3, (i * 5) % 256), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(pngs, `i${i}.png`));
  }
  const child = spawn(process.execPath, [BIN, ...train, '--data', pngs, '--epochs', '2', '--out', interruptedRun], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  // Ctrl-C once step 2 is logged (or the test finds out why it never was).
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/step 2\/3/.test(stderr)) resolve();
    });
    void closed.then(() => resolve());
  });
  child.kill('SIGINT');
  interrupted = { code: await closed, stderr, checkpoint: latestCheckpoint(join(interruptedRun, 'checkpoints')) };
  ({ result: resumed, loaded: resumedTfjs } = tfjsModules(
    medvaeProcess(['train', '--resume', interruptedRun], { execArgv: TFJS_AT_EXIT }),
  ));
});

test('--data <folder of PNGs> with a config made for an npz: the format is inferred, as data info does', async () => {
  assert.match(interrupted.stderr, /data: .*pngs\[train\], 48 images/);
  assert.equal(resumed.status, 0, resumed.stderr);
  const info = await medvae(['data', 'info', pngs]);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /\(format folder\)\n {2}all: 48 samples/);
});

test('a wrong format names what it expected and what the path looks like; an unreadable path names the formats tried', async () => {
  const out = join(dir, 'wrong-format');
  // A path on the command line that is no dataset is a usage mistake: exit 2, before the backend starts.
  const r = await medvae([...train, '--data', pngs, '--set', 'data.format=medmnist', '--out', out]);
  oneLine(r, 2, /^error: --data .*pngs: is a folder, but data.format 'medmnist' expects an \.npz file; it looks like format 'folder'/);
  noBackend(r, 'a wrong format');
  assert.ok(!existsSync(out), 'no run directory for a run that never started');
  const txt = join(dir, 'notes.txt');
  writeFileSync(txt, 'hello');
  oneLine(await medvae([...train, '--data', txt, '--out', out]), 2, /^error: --data .*notes\.txt: .*tried medmnist .*gleason .*folder/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  oneLine(
    await medvae(['data', 'info', empty]),
    2,
    /^error: .*empty: a folder with no dataset .*tried medmnist.*; point --data \(data\.path\) at an \.npz file or a dataset folder$/,
  );
});

test('data info on a truncated npz or a missing path, data download offline: one line, nothing left behind', async () => {
  const cut = join(dir, 'cut.npz');
  writeFileSync(cut, readFileSync(npz).subarray(0, 3000));
  oneLine(await medvae(['data', 'info', cut]), 1, /^error: .*cut\.npz: truncated archive/);
  oneLine(await medvae(['data', 'info', join(dir, 'nope.npz')]), 2, /^error: .*nope\.npz does not exist; check the path$/);
  const target = join(dir, 'downloads', 'here');
  // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once. The
  // address from the environment, set here for the one command (a real process's exit 1 is the
  // strict run's below).
  const before = process.env.MEDVAE_MEDMNIST_URL;
  process.env.MEDVAE_MEDMNIST_URL = 'http://127.0.0.1:9/files';
  const r = await medvae(['data', 'download', 'chestmnist', '--dir', target]).finally(() => {
    if (before === undefined) delete process.env.MEDVAE_MEDMNIST_URL;
    else process.env.MEDVAE_MEDMNIST_URL = before;
  });
  oneLine(r, 1, /^error: cannot reach http:\/\/127\.0\.0\.1:9\/files\/chestmnist\.npz\?download=1 \(.*\): check the network/);
  assert.ok(!existsSync(join(dir, 'downloads')), 'no empty output folder');
  assert.match((await medvae(['data', 'info', cut, '--debug'])).stderr, /\n\s+at /, '--debug shows the stack');
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
  // A real process: the run gets as far as its data, on a backend.
  const r = medvaeProcess([...train, '--data', broken, '--strict', '--max-steps', '2', '--out', out]);
  oneLine(r, 1, /^error: .*bad\.png/);
  assert.doesNotMatch(r.stderr, /run directory/);
  assert.ok(!existsSync(out), 'no stub run directory');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'train:\n  lr: fast\n');
  const v = await medvae(['train', '--config', bad]);
  oneLine(v, 1, /^error: .*bad\.yaml: 'train\.lr' must be a number/);
  assert.doesNotMatch(v.stderr, /run directory/);
  noBackend(v, 'a bad config');
});

test('usage mistakes exit 2 with one line naming the flag', async () => {
  // Commander's own (an unknown flag) in a real process: the next test's. These in this process are mapped alike.
  oneLine(
    await medvae(['train', '--resume', join(dir, 'no-run')]),
    2,
    /^error: --resume .*no-run: no such run directory or checkpoint; give the directory `medvae train` printed as 'run directory:'/,
  );
  // sample and eval read their flags before the run (a missing one here) and before the backend.
  const noRun = join(dir, 'no-such-run');
  const sampleN = await medvae(['sample', '--run', noRun, '--n', 'x', '--out', join(dir, 's.npz')]);
  oneLine(sampleN, 2, /^error: --n must be a positive integer, got x/);
  noBackend(sampleN, 'sample --n x');
  const latent = await medvae(['sample', '--run', interruptedRun, '--latent', 'uniform', '--out', join(dir, 's.npz')]);
  oneLine(latent, 2, /^error: --latent must be one of default, prior, .*, got 'uniform'/);
  noBackend(latent, 'sample --latent uniform');
  const evalN = await medvae(['eval', '--run', noRun, '--n', '1']);
  oneLine(evalN, 2, /^error: --n must be an integer >= 2, got '1'/);
  noBackend(evalN, 'eval --n 1');
});

test('--help and usage errors load no TF.js: medvae imports a command only to run it, medvae-dist never', () => {
  // The positive control: a process that trains is seen loading it.
  assert.ok(resumedTfjs > 0, `the resumed training loaded ${resumedTfjs} TF.js modules`);
  // A real process: commander's own usage error exits 2.
  const unknown = tfjsModules(medvaeProcess(['train', '--no-such-flag'], { execArgv: TFJS_AT_EXIT }));
  oneLine(unknown.result, 2, /^error: unknown option '--no-such-flag'/);
  assert.equal(unknown.loaded, 0, 'medvae train --no-such-flag loaded TF.js');
  // A flag of sample's refused before its code loads.
  const latent = tfjsModules(
    medvaeProcess(['sample', '--run', interruptedRun, '--latent', 'uniform', '--out', join(dir, 's.npz')], { execArgv: TFJS_AT_EXIT }),
  );
  oneLine(latent.result, 2, /^error: --latent must be one of default, prior, .*, got 'uniform'/);
  assert.equal(latent.loaded, 0, 'medvae sample --latent uniform loaded TF.js');
  const help = medvaeDist(['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: medvae-dist /m);
  assert.match(help.stdout, /--cpu-workers <n>/);
});

test('a mistyped --data says what is wrong first; download advice only for a MedMNIST file name, with its real name', async () => {
  const out = join(dir, 'never-made');
  const missing = await medvae([...train, '--data', '/nonexistent.npz', '--out', out]);
  oneLine(missing, 2, /^error: --data \/nonexistent\.npz does not exist; check the path$/);
  noBackend(missing, 'refused before the backend starts');
  const chest = join(dir, 'chestmnist_64.npz');
  oneLine(
    await medvae([...train, '--data', chest, '--out', out]),
    2,
    new RegExp(
      `^error: --data ${chest.replace(/[.]/g, '\\.')} does not exist; download it with \`medvae data download chestmnist --size 64 --dir ${dir}\`$`,
    ),
  );
  oneLine(
    await medvae([...train, '--data', join(dir, 'tiyn.npz'), '--out', out]),
    2,
    /^error: --data .*tiyn\.npz does not exist; did you mean .*tiny\.npz\?$/,
  );
  oneLine(await medvae(['data', 'info', join(dir, 'tiny.np')]), 2, /^error: .*tiny\.np does not exist; did you mean .*tiny\.npz\?$/);
  oneLine(
    await medvae(['data', 'download', 'chestmnst', '--dir', join(dir, 'dl')]),
    2,
    /^error: unknown MedMNIST dataset 'chestmnst'; did you mean chestmnist\? \(known: .*retinamnist/,
  );
  assert.ok(!existsSync(out) && !existsSync(join(dir, 'dl')));
});

test("a newcomer's mistakes with train and medvae-dist: one line that says what to do, exit 2 for the command line's", async () => {
  const out = join(dir, 'newcomer');
  const yamlDir = join(dir, 'configs-folder');
  mkdirSync(yamlDir);
  writeFileSync(join(yamlDir, 'mine.yaml'), 'train:\n  epochs: 1\n');
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'train:\n  lr: [0.1, 0.2\n');
  const noImages = join(dir, 'notes-folder');
  mkdirSync(noImages);
  writeFileSync(join(noImages, 'readme.txt'), 'not an image');
  const cases: [string[], number, RegExp][] = [
    [[...train, '--set', 'train.lr=abc'], 2, /^error: --set: 'train\.lr' must be a number, got "abc"$/],
    [[...train, '--set', 'train.lr=-1'], 2, /^error: configs\/smoke\.yaml \+ --set: 'train\.lr' must be > 0, got -1$/],
    [[...train, '--set', 'train.learning_rate=0.1'], 2, /^error: --set: unknown key 'train\.learning_rate'; expected one of: .*\blr\b/],
    [['train', '--config', join(dir, 'missing.yaml')], 2, /^error: --config .*missing\.yaml does not exist; check the path$/],
    [
      ['train', '--config', 'configs/vae_retinamist.yaml'],
      2,
      /^error: --config configs\/vae_retinamist\.yaml does not exist; did you mean configs\/vae_retinamnist\.yaml/,
    ],
    [
      ['train', '--config', yamlDir],
      2,
      /^error: --config .*configs-folder is a folder, expected a YAML file such as .*configs-folder\/mine\.yaml$/,
    ],
    [['train', '--config', broken], 1, /^error: .*broken\.yaml: not valid YAML at line 3, column 1: .*; correct the file there$/],
    [[...train, '--epochs', '0'], 2, /^error: --epochs must be an integer >= 1, got '0'$/],
    [[...train, '--epochs', '-1'], 2, /^error: --epochs must be an integer >= 1, got '-1'$/],
    [[...train, '--max-steps', 'abc'], 2, /^error: --max-steps must be an integer >= 0, got 'abc'$/],
    [[...train, '--threads', 'all'], 2, /^error: --threads must be an integer >= 0, got 'all'$/],
    [[...train, '--metrics-port', '70000'], 2, /^error: --metrics-port must be an integer from 0 to 65535, got '70000'$/],
    [
      [...train, '--data', noImages],
      2,
      /^error: --data .*notes-folder: a folder with no dataset .*; point --data \(data\.path\) at an \.npz file or a dataset folder$/,
    ],
  ];
  for (const [args, status, pattern] of cases) {
    const r = await medvae([...args, '--out', out]);
    oneLine(r, status, pattern);
    noBackend(r, `${args.join(' ')}: refused before the backend starts`);
  }
  const dist = ['--config', 'configs/smoke.yaml', '--backend', 'wasm', '--log-format', 'plain', '--out', out];
  const distCases: [string[], RegExp][] = [
    [['--gpus', 'abc'], /^error: --gpus must be distinct GPU indices separated by commas, e\.g\. 0,1; got 'abc'$/],
    [['--cpu-workers', '0'], /^error: --cpu-workers must be an integer >= 1, got '0'$/],
    [['--cpu-workers', '2.5'], /^error: --cpu-workers must be an integer >= 1, got '2\.5'$/],
    [['--cpu-workers', '2', '--epochs', '0'], /^error: --epochs must be an integer >= 1, got '0'$/],
  ];
  for (const [args, pattern] of distCases) oneLine(medvaeDist([...dist, ...args]), 2, pattern);
  assert.ok(!existsSync(out), 'no run directory for a run that never started');
});

test('Ctrl-C finishes the step: checkpoint, the exact --resume command, exit 130; that command continues the run', () => {
  const { code, stderr, checkpoint } = interrupted;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted: finishing this step/);
  const line = stderr.trim().split('\n').at(-1)!;
  const m = /^interrupted at step (\d+); checkpoint (.+); continue with: npx medvae train --resume '(.+)'$/.exec(line);
  assert.ok(m, line);
  // before() resumed this very command.
  assert.equal(m[3], interruptedRun);
  assert.equal(m[2], checkpoint);
  const state = JSON.parse(readFileSync(join(m[2], 'state.json'), 'utf8')) as { step: number };
  assert.ok(state.step >= 2 && state.step === Number(m[1]), `${state.step} saved, step ${m[1]} printed`);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resumed from .*: epoch \\d, step ${m[1]}`));
  assert.match(resumed.stderr, /finished at step 6/);
});
