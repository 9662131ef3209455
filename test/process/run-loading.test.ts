// Every command that reads a trained run, and the library's loadRun: the checkpoint it loads is
// verified against its manifest; a damaged or half-written newer one is named in one line and the
// newest intact one is used; --checkpoint (or a checkpoint folder as --run) picks one explicitly;
// a --run path that is not a run says what it is first. The commands run in this process through
// their commander wiring (medvaeInProcess); real `medvae` processes where the exit code, the one
// error line and no stack are the process's own (one fallback, exit 0; one failure, exit 1).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { medvaeInProcess as medvae, medvaeProcess, type CliResult } from '../helpers/medvae-cli.ts';
import { initBackend, loadRun, RunDirError } from '../../src/index.ts';

const dir = tempDir('medvae-run-loading-');
const data = join(dir, 'tiny.npz');
// 32 training images at batch 16, 2 epochs, a checkpoint every step: step-0000002..4 kept (keep_last 3), and best.
writeTinyNpz(data, { train: 32, val: 8, test: 8 });
const trained = join(dir, 'trained');

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const ckpt = (run: string, step: number): string => join(run, 'checkpoints', `step-${String(step).padStart(7, '0')}`);

/** A copy of the trained run to damage. */
function copyRun(name: string): string {
  const run = join(dir, name);
  cpSync(trained, run, { recursive: true });
  return run;
}

function cutInHalf(file: string): void {
  truncateSync(file, Math.floor(statSync(file).size / 2));
}

/** A run whose newest checkpoint's decoder/weights.bin is cut in half, and without best: step-0000003 is the newest intact. */
function damagedRun(name: string): string {
  const run = copyRun(name);
  rmSync(join(run, 'checkpoints', 'best'), { recursive: true });
  cutInHalf(join(ckpt(run, 4), 'decoder', 'weights.bin'));
  return run;
}

/** The lines about passed-over checkpoints. */
function skipLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /damaged|incomplete/.test(l));
}

/** Exit 1, the failure is the last line and the only "error:" line, and no stack trace. */
function oneError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines.at(-1)!, pattern);
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

/** Each command that reads a run, with arguments small enough for a few seconds. */
const COMMANDS: Record<string, (out: string) => string[]> = {
  sample: (out) => ['--n', '4', '--out', `${out}.npz`],
  reconstruct: (out) => ['--n', '2', '--out', `${out}.png`],
  denoise: (out) => ['--n', '2', '--out', `${out}.png`],
  interpolate: (out) => ['--pairs', '1', '--steps', '2', '--out', `${out}.png`],
  impute: (out) => ['--mask', 'center:0.25', '--n', '2', '--iters', '1', '--samples', '1', '--sigma', '0.1', '--out', `${out}.png`],
  score: (out) => ['--n', '2', '--samples', '1', '--sigma', '0.1', '--out', `${out}.csv`],
  eval: () => ['--n', '2', '--feature-steps', '1'],
};

function command(name: string, run: string, extra: string[] = []): string[] {
  return [name, '--run', run, ...COMMANDS[name]!(join(dir, `out-${name}`)), '--backend', 'wasm', ...extra];
}

before(async () => {
  const r = await medvae(['train', ...smokeFlags(data), '--epochs', '2', '--set', 'output.checkpoint_every_steps=1', '--out', trained]);
  assert.equal(r.status, 0, r.stderr);
  for (const step of [2, 3, 4]) assert.ok(existsSync(join(ckpt(trained, step), 'manifest.json')), `step ${step}`);
  // loadRun in this process builds its models on the backend the commands here run on.
  await initBackend('wasm', () => undefined);
});

test('sample --run RUN --out s.png with the newest decoder/weights.bin cut in half: exit 0, one line naming both checkpoints, s.png a PNG file', () => {
  const run = damagedRun('sample-fallback');
  const out = join(dir, 's.png');
  // A real process: the warning is on its stderr and it exits 0.
  const r = medvaeProcess(['sample', '--run', run, '--n', '4', '--out', out, '--backend', 'wasm']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(skipLines(r.stderr), [
    `warning: ${ckpt(run, 4)} is damaged (decoder/weights.bin: ${statSync(join(ckpt(run, 4), 'decoder', 'weights.bin')).size} bytes, the manifest says ${statSync(join(ckpt(trained, 4), 'decoder', 'weights.bin')).size}); using step-0000003`,
  ]);
  assert.ok(statSync(out).isFile());
  assert.deepEqual([...readFileSync(out).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'the PNG signature');
  assert.match(r.stderr, /wrote 4 samples/);
});

test('every other command that reads a run falls back the same way, in one line', async () => {
  const run = damagedRun('every-command');
  for (const name of Object.keys(COMMANDS).filter((c) => c !== 'sample')) {
    const r = await medvae(command(name, run));
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    const lines = skipLines(r.stderr);
    assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(`^warning: ${escape(ckpt(run, 4))} is damaged \\(decoder/weights\\.bin: .*\\); using step-0000003$`),
      name,
    );
  }
  // eval wrote into the run, and says which step it evaluated.
  const evalFile = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as { model: { step: number } };
  assert.equal(evalFile.model.step, 3);
});

test('an intact best stands in for its own damaged step-N', async () => {
  const run = copyRun('best-stands-in');
  rmSync(join(run, 'checkpoints', 'best'), { recursive: true });
  cpSync(ckpt(run, 4), join(run, 'checkpoints', 'best'), { recursive: true });
  cutInHalf(join(ckpt(run, 4), 'encoder', 'weights.bin'));
  const r = await medvae(command('sample', run));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    skipLines(r.stderr).map((l) => l.replace(/ \(encoder\/weights\.bin: [^)]*\)/, ' (...)')),
    [`warning: ${ckpt(run, 4)} is damaged (...); using best (step 4)`],
  );
});

test("the library's loadRun falls back too, saying so once; a damaged checkpoint it is asked for is an error", async () => {
  const run = damagedRun('library');
  const lines: string[] = [];
  const loaded = await loadRun(run, { log: (line) => lines.push(line) });
  try {
    assert.equal(loaded.checkpoint, ckpt(run, 3));
    assert.equal(loaded.state.step, 3);
    assert.equal(loaded.runDir, run);
  } finally {
    loaded.model.dispose();
  }
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0]!, /step-0000004 is damaged \(decoder\/weights\.bin: \d+ bytes, the manifest says \d+\); using step-0000003$/);
  await assert.rejects(loadRun(run, { checkpoint: 'step-0000004', log: () => undefined }), /step-0000004 is damaged .*\(step-0000003\)/);
  await assert.rejects(
    loadRun(join(dir, 'no-such-run')),
    (e: unknown) => e instanceof RunDirError && /no-such-run does not exist/.test(e.message),
  );
});

test('several passed over: one line naming each; none intact: one error line listing what was tried and what to do', async () => {
  const run = damagedRun('several');
  // step-0000003 lost its manifest while the others have theirs: incomplete, not old.
  rmSync(join(ckpt(run, 3), 'manifest.json'));
  const r = await medvae(command('sample', run));
  assert.equal(r.status, 0, r.stderr);
  const lines = skipLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0]!,
    /^warning: .*step-0000004 is damaged \(decoder\/weights\.bin: .*\), step-0000003 is incomplete \(manifest\.json: missing .*\); using step-0000002$/,
  );
  cutInHalf(join(ckpt(run, 2), 'optimizer-model.bin'));
  // A real process: it exits 1 with that line last, and no stack.
  oneError(
    medvaeProcess(command('sample', run)),
    new RegExp(
      `^error: ${escape(run)}: no intact checkpoint: .*step-0000004 is damaged .*step-0000003 is incomplete .*step-0000002 is damaged \\(optimizer-model\\.bin: .*\\); copy an intact checkpoint back into .*, or train the run again \\(medvae train --config .*config\\.yaml\\)$`,
    ),
  );
});

test('a checkpoint still being written by another process (no manifest yet, or a temporary folder) is skipped like a damaged one', async () => {
  const run = copyRun('being-written');
  // What another process copying or writing a checkpoint leaves while it works.
  cpSync(ckpt(run, 4), ckpt(run, 5), { recursive: true });
  rmSync(join(ckpt(run, 5), 'manifest.json'));
  mkdirSync(join(run, 'checkpoints', '.step-0000006.4242.1700000000000.tmp', 'encoder'), { recursive: true });
  const r = await medvae(command('sample', run));
  assert.equal(r.status, 0, r.stderr);
  const lines = skipLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0]!,
    /^warning: .*step-0000005 is incomplete \(manifest\.json: missing while an older checkpoint of the run has one: still being written, or cut short\); using step-0000004$/,
  );
});

test('a run from before manifests loads as it did; its damaged newest is checked by its own specs, and the line says so', async () => {
  const run = copyRun('legacy');
  for (const step of [2, 3, 4]) rmSync(join(ckpt(run, step), 'manifest.json'));
  rmSync(join(run, 'checkpoints', 'best', 'manifest.json'), { force: true });
  const lines: string[] = [];
  const intact = await loadRun(run, { log: (line) => lines.push(line) });
  intact.model.dispose();
  assert.equal(intact.checkpoint, ckpt(run, 4));
  assert.deepEqual(lines, []);
  rmSync(join(run, 'checkpoints', 'best'), { recursive: true });
  cutInHalf(join(ckpt(run, 4), 'decoder', 'weights.bin'));
  const r = await medvae(command('sample', run));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    skipLines(r.stderr).map((l) => l.replace(/\d+ bytes/, 'N bytes').replace(/need \d+/, 'need M')),
    [
      `warning: ${ckpt(run, 4)} is damaged (decoder/weights.bin: N bytes, its specs need M; no manifest (an older medvae wrote it), checked against its own specs); using step-0000003`,
    ],
  );

  // An old run resumed by this version: its new checkpoints have manifests, its old ones still load.
  const resumed = damagedRun('legacy-resumed');
  for (const step of [2, 3]) rmSync(join(ckpt(resumed, step), 'manifest.json'));
  const seen: string[] = [];
  const older = await loadRun(resumed, { log: (line) => seen.push(line) });
  older.model.dispose();
  assert.equal(older.checkpoint, ckpt(resumed, 3));
  assert.equal(seen.length, 1, seen.join('\n'));
  assert.match(seen[0]!, /step-0000004 is damaged \(decoder\/weights\.bin: \d+ bytes, the manifest says \d+\); using step-0000003$/);
});

test('--checkpoint step-N, N or a checkpoint folder as --run picks one; a damaged one it names is an error; a missing one names those there', async () => {
  const run = damagedRun('explicit');
  const outs: string[] = [];
  for (const [i, extra] of [['--checkpoint', 'step-0000003'], ['--checkpoint', '3'], []].entries()) {
    const out = join(dir, `explicit-${i}.npz`);
    const r = await medvae(['sample', '--run', i === 2 ? ckpt(run, 3) : run, ...extra, '--n', '4', '--out', out, '--backend', 'wasm']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(skipLines(r.stderr), [], 'nothing passed over');
    outs.push(sha(out));
  }
  assert.equal(new Set(outs).size, 1, 'the same checkpoint three ways');
  const damaged = new RegExp(
    `^error: ${escape(ckpt(run, 4))} is damaged \\(decoder/weights\\.bin: \\d+ bytes, the manifest says \\d+\\); name another, or give the run directory alone to use the newest intact one \\(step-0000003\\)$`,
  );
  oneError(await medvae(command('sample', run, ['--checkpoint', 'step-4'])), damaged);
  oneError(await medvae(command('sample', ckpt(run, 4))), damaged);
  // Every command takes --checkpoint; a missing one names the checkpoints the run has.
  for (const name of Object.keys(COMMANDS)) {
    oneError(
      await medvae(command(name, run, ['--checkpoint', name === 'eval' ? 'best' : '99'])),
      new RegExp(
        `^error: ${escape(join(run, 'checkpoints'))} has no checkpoint ${name === 'eval' ? 'best' : 'step-0000099'}; it has step-0000002, step-0000003, step-0000004$`,
      ),
    );
  }
  // eval of a checkpoint folder: that step, written into its run.
  const r = await medvae(command('eval', ckpt(run, 2)));
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as { model: { step: number } }).model.step, 2);
});

test('--run that is not a run says what is wrong first: missing, a file, a folder without config.yaml; also report and eval', async () => {
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'hello');
  const folder = join(dir, 'just-a-folder');
  mkdirSync(folder);
  const cases: [string, RegExp][] = [
    [
      join(dir, 'no-such-run'),
      /^error: \S*no-such-run does not exist; give a run directory \(the one `medvae train` printed as 'run directory:'\) or one of its checkpoints \(checkpoints\/step-N inside it\)$/,
    ],
    [file, /^error: \S*notes\.txt is a file, expected a run directory \(a run directory holds config\.yaml and checkpoints\/\)$/],
    [folder, /^error: \S*just-a-folder is not a run directory: no config\.yaml \(a run directory holds config\.yaml and checkpoints\/\)$/],
  ];
  const names = [...Object.keys(COMMANDS), 'report'];
  for (const [i, name] of names.entries()) {
    // sample, eval and report meet every case; the others one each, in turn.
    const mine = ['sample', 'eval', 'report'].includes(name) ? cases : [cases[i % cases.length]!];
    for (const [path, pattern] of mine)
      oneError(await medvae(name === 'report' ? ['report', '--run', path] : command(name, path)), pattern);
  }
  // The checkpoints folder itself points at its run. (A real process's exit 1 with one error line
  // last is proven by 'several passed over: ... none intact' above.)
  oneError(
    await medvae(['report', '--run', join(trained, 'checkpoints')]),
    new RegExp(`is not a run directory: no config\\.yaml .*; its run directory is ${escape(trained)}$`),
  );
});

test('report --run of a checkpoint folder reports its run, into the run directory', async () => {
  const run = copyRun('reported');
  const r = await medvae(['report', '--run', ckpt(run, 3)]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(run, 'report.html')));
  assert.ok(!existsSync(join(ckpt(run, 3), 'report.html')));
});
