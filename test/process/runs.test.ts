// Run directories: how a run counts its steps and epochs (console, metrics.jsonl, --log-format
// json, a resumed run), checkpoints that prove themselves (a manifest written last, --resume past a
// damaged checkpoint, leftovers of killed writes cleared, metrics.jsonl cut back), every command
// that reads a trained run and the library's loadRun (the checkpoint verified, a damaged one named
// and passed over, --checkpoint), and a run that runs out of disk space. The commands run in this
// process through their commander wiring (medvaeInProcess), and in real `medvae` processes where
// the exit code and the last stderr line are the process's own. One process for all, as a process
// costs about a second to start: each describe block below keeps its hooks and state to itself;
// each trains the runs it reads in its own before() or test, on wasm, which each command sets
// itself.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { medvaeInProcess as medvae, medvaeProcess, type CliResult } from '../helpers/medvae-cli.ts';
import { initBackend, loadRun, RunDirError } from '../../src/index.ts';
import { listCheckpoints } from '../../src/run/checkpoint.ts';
import { CheckpointDamagedError, verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';
import { readMetricsLog } from '../../src/run/metrics-log.ts';
import { removeStaleTemps } from '../../src/util/atomic.ts';
import { rewindMetrics } from '../../src/train/resume.ts';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('train-numbering: steps and epochs counted from 1, as the console shows them', () => {
  let dir: string;
  let npz: string;
  let base: string[];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'medvae-numbering-'));
    npz = join(dir, 'tiny.npz');
    // 48 training images at batch 16: 3 steps an epoch.
    writeTinyNpz(npz, { train: 48, val: 8, test: 8 });
    base = ['train', '--config', 'configs/smoke.yaml', '--data', npz, '--backend', 'wasm'];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Step number -> epoch, from the console's "epoch E/N step S/M" lines. */
  function consoleEpochs(stderr: string): Map<number, number> {
    const out = new Map<number, number>();
    for (const m of stderr.matchAll(/^epoch (\d+)\/\d+ step (\d+)\/(\d+) /gm)) {
      out.set((Number(m[1]) - 1) * Number(m[3]) + Number(m[2]), Number(m[1]));
    }
    return out;
  }

  test('metrics.jsonl counts epochs as the console does, and so does a resumed run', async () => {
    const run = join(dir, 'run');
    const first = await medvae([...base, '--epochs', '2', '--log-format', 'plain', '--out', run]);
    assert.equal(first.status, 0, first.stderr);
    const shown = consoleEpochs(first.stderr);
    assert.deepEqual(
      [...shown.entries()],
      [
        [1, 1],
        [2, 1],
        [3, 1],
        [4, 2],
        [5, 2],
        [6, 2],
      ],
    );
    let log = readMetricsLog(join(run, 'metrics.jsonl'));
    assert.deepEqual(
      log.filter((r) => r.kind === 'step').map((r) => [r.step, r.epoch]),
      [...shown.entries()],
      'each step record has the epoch the console showed for that step',
    );
    assert.deepEqual(
      log.filter((r) => r.kind === 'epoch').map((r) => [r.epoch, r.step, r.complete]),
      [
        [1, 3, true],
        [2, 6, true],
      ],
    );
    assert.equal(log.find((r) => r.kind === 'start')!.epoch, 1);
    for (const e of log.filter((r) => r.kind === 'epoch')) {
      assert.ok(existsSync(join(run, 'samples', `epoch-${String(e.epoch).padStart(4, '0')}.png`)), `the grid of epoch ${e.epoch}`);
    }

    const resumed = await medvae(['train', '--resume', run, '--epochs', '3', '--log-format', 'plain']);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed from .*: epoch 3, step 6/);
    log = readMetricsLog(join(run, 'metrics.jsonl'));
    assert.deepEqual(
      log.filter((r) => r.kind === 'start').map((r) => [r.step, r.epoch]),
      [
        [0, 1],
        [6, 3],
      ],
      'a start record names the epoch about to run',
    );
    assert.deepEqual(
      log.filter((r) => r.kind === 'step' && r.step > 6).map((r) => [r.step, r.epoch]),
      [...consoleEpochs(resumed.stderr).entries()],
    );
    assert.deepEqual(
      log.filter((r) => r.kind === 'epoch').map((r) => r.epoch),
      [1, 2, 3],
    );
  });

  test('--log-format json counts steps and epochs from 1, as metrics.jsonl does', async () => {
    const run = join(dir, 'json');
    const r = await medvae([...base, '--log-format', 'json', '--epochs', '2', '--max-steps', '4', '--out', run]);
    assert.equal(r.status, 0, r.stderr);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event?: string; step?: number; epoch?: number; stepInEpoch?: number })
      .filter((e) => e.event === 'step');
    assert.deepEqual(
      events.map((e) => [e.step, e.epoch, e.stepInEpoch]),
      [
        [1, 1, 1],
        [2, 1, 2],
        [3, 1, 3],
        [4, 2, 1],
      ],
    );
    const records = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; step: number; epoch: number })
      .filter((rec) => rec.kind === 'step');
    assert.deepEqual(
      records.map((rec) => [rec.step, rec.epoch]),
      events.map((e) => [e.step, e.epoch]),
    );
  });
});

describe('checkpoint-resume: manifests, --resume past a damaged checkpoint, stale temporaries', () => {
  let dir: string;
  /** 3 epochs (step-0000003, 6 and 9), and the same run stopped after 2 (step-0000003 and 6); the tests copy them. */
  let straight: string;
  let twoEpochs: string;

  function weightDigests(ckpt: string): string[] {
    return ['encoder/weights.bin', 'decoder/weights.bin', 'optimizer-model.bin'].map((f) => sha(join(ckpt, f)));
  }

  function loggedSteps(run: string): number[] {
    return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; step: number })
      .filter((r) => r.kind === 'step')
      .map((r) => r.step);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'medvae-ckpt-'));
    const data = join(dir, 'tiny.npz');
    // 48 training images at batch 16: 3 steps an epoch.
    writeTinyNpz(data, { train: 48, val: 8, test: 8 });
    const base = ['train', '--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain'];
    straight = join(dir, 'straight');
    twoEpochs = join(dir, 'two-epochs');
    const r = await medvae([...base, '--epochs', '3', '--out', straight]);
    assert.equal(r.status, 0, r.stderr);
    const r2 = await medvae([...base, '--epochs', '2', '--out', twoEpochs]);
    assert.equal(r2.status, 0, r2.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function copyOf(run: string, name: string): string {
    const copy = join(dir, name);
    cpSync(run, copy, { recursive: true });
    return copy;
  }

  test('a checkpoint ends with a manifest of every file: size and SHA-256, and it verifies', () => {
    const run = twoEpochs;
    const ckpt = listCheckpoints(join(run, 'checkpoints')).at(-1)!;
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8')) as {
      version: number;
      files: Record<string, { size: number; sha256: string }>;
    };
    assert.equal(manifest.version, 1);
    assert.ok(
      manifest.files['encoder/weights.bin'] && manifest.files['state.json'] && manifest.files['optimizer-model.bin'],
      Object.keys(manifest.files).join(),
    );
    for (const [f, e] of Object.entries(manifest.files)) {
      assert.equal(statSync(join(ckpt, f)).size, e.size, f);
      assert.equal(sha(join(ckpt, f)), e.sha256, f);
    }
    verifyCheckpoint(ckpt);
  });

  test('--resume past a cut-short weights.bin: one line naming it, then the newest intact checkpoint of the same run, weights bit for bit', async () => {
    const run = copyOf(twoEpochs, 'run');
    const ckpts = listCheckpoints(join(run, 'checkpoints'));
    assert.deepEqual(
      ckpts.map((c) => c.slice(-12)),
      ['step-0000003', 'step-0000006'],
    );
    const weights = join(ckpts[1]!, 'encoder', 'weights.bin');
    truncateSync(weights, Math.floor(statSync(weights).size / 2));
    assert.throws(
      () => verifyCheckpoint(ckpts[1]!),
      (e: unknown) => e instanceof CheckpointDamagedError && e.file === weights,
    );
    // What a kill -9 during a checkpoint write leaves, and a record line cut short.
    const stale = join(run, 'checkpoints', '.step-0000009.4242.1700000000000.tmp');
    mkdirSync(join(stale, 'encoder'), { recursive: true });
    appendFileSync(join(run, 'metrics.jsonl'), '{"kind":"step","step":7,"ter');
    const before = readdirSync(dir).length;

    const r = await medvae(['train', '--resume', run, '--epochs', '3', '--backend', 'wasm', '--log-format', 'plain']);
    assert.equal(r.status, 0, r.stderr);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('damaged'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(
      warnings[0]!,
      /encoder\/weights\.bin: \d+ bytes, the manifest says \d+\).*moved aside to damaged-step-0000006; resuming from step-0000003/,
    );
    assert.match(r.stderr, /resumed from .*step-0000003: epoch 2, step 3/);
    assert.equal(readdirSync(dir).length, before, 'no new run directory');
    assert.ok(!existsSync(stale), 'stale temporary directory removed');
    assert.ok(existsSync(join(run, 'checkpoints', 'damaged-step-0000006')));
    assert.deepEqual(loggedSteps(run), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const last = listCheckpoints(join(run, 'checkpoints')).at(-1)!;
    assert.ok(last.endsWith('step-0000009'));
    assert.deepEqual(weightDigests(last), weightDigests(listCheckpoints(join(straight, 'checkpoints')).at(-1)!));
  });

  test('a checkpoint from before manifests still resumes; cut short, it is named by its own specs', async () => {
    const legacy = copyOf(straight, 'legacy');
    for (const c of listCheckpoints(join(legacy, 'checkpoints'))) rmSync(join(c, 'manifest.json'));
    const newest = listCheckpoints(join(legacy, 'checkpoints')).at(-1)!;
    verifyCheckpoint(newest);
    const opt = join(newest, 'optimizer-model.bin');
    truncateSync(opt, 100);
    assert.throws(() => verifyCheckpoint(newest), /optimizer-model\.bin: 100 bytes, its specs need \d+/);
    // The run's own 3 epochs: step-0000006 resumes to step 9.
    const r = await medvae(['train', '--resume', legacy, '--backend', 'wasm', '--log-format', 'plain']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /optimizer-model\.bin: 100 bytes.*resuming from step-0000006/);
    assert.deepEqual(
      loggedSteps(legacy),
      Array.from({ length: 9 }, (_, i) => i + 1),
    );
  });

  test('--resume of one checkpoint by hand continues in its own run directory', async () => {
    const run = copyOf(straight, 'by-hand');
    const older = listCheckpoints(join(run, 'checkpoints'))[0]!;
    const before = readdirSync(dir).length;
    const r = await medvae(['train', '--resume', older, '--backend', 'wasm', '--log-format', 'plain']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readdirSync(dir).length, before, 'no new run directory');
    assert.match(r.stderr, new RegExp(`run directory: ${run.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.match(
      r.stderr,
      /resuming step-0000003 by hand: the run's later checkpoints are set aside as superseded-step-0000006, superseded-step-0000009/,
    );
    // Steps 4 to 9 again, beside the checkpoint resumed.
    assert.deepEqual(
      listCheckpoints(join(run, 'checkpoints')).map((c) => c.slice(-12)),
      ['step-0000003', 'step-0000006', 'step-0000009'],
    );
    assert.deepEqual(
      loggedSteps(run),
      Array.from({ length: 9 }, (_, i) => i + 1),
    );
  });

  test('stale temporaries: removed, and a replaced directory whose replacement never landed is put back', () => {
    const d = join(dir, 'stale');
    mkdirSync(join(d, '.best.77.1700000000000.tmp.old'), { recursive: true });
    writeFileSync(join(d, '.best.77.1700000000000.tmp.old', 'state.json'), '{}');
    mkdirSync(join(d, '.best.77.1700000000000.tmp'));
    writeFileSync(join(d, '.loss.png.88.1700000000001.tmp'), 'x');
    writeFileSync(join(d, 'keep.png'), 'x');
    assert.equal(removeStaleTemps(d).length, 3);
    assert.deepEqual(readdirSync(d).sort(), ['best', 'keep.png']);
    assert.ok(existsSync(join(d, 'best', 'state.json')));
  });

  test('rewindMetrics keeps records up to the step, and records without a step', () => {
    const f = join(dir, 'm.jsonl');
    writeFileSync(
      f,
      [
        '{"kind":"start","step":0}',
        '{"kind":"step","step":1}',
        '{"kind":"epoch","step":1}',
        '{"kind":"step","step":2}',
        '{"note":1}',
        '{"kind":"st',
      ].join('\n'),
    );
    assert.equal(rewindMetrics(f, 1), 2);
    assert.deepEqual(readFileSync(f, 'utf8').trim().split('\n'), [
      '{"kind":"start","step":0}',
      '{"kind":"step","step":1}',
      '{"kind":"epoch","step":1}',
      '{"note":1}',
    ]);
  });
});

describe('run-loading: commands and loadRun read the newest intact checkpoint, or the one named', () => {
  let dir: string;
  let trained: string;

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

  /** `medvae <name>` on `run` succeeds with exactly one line about skipped checkpoints, and it matches `pattern`. */
  async function fallsBackInOneLine(name: string, run: string, pattern: RegExp): Promise<void> {
    const r = await medvae(command(name, run));
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    const lines = skipLines(r.stderr);
    assert.equal(lines.length, 1, `${name}: ${r.stderr}`);
    assert.match(lines[0]!, pattern, name);
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
    dir = tempDir('medvae-run-loading-');
    const data = join(dir, 'tiny.npz');
    // 32 training images at batch 16, 2 epochs, a checkpoint every step: step-0000002..4 kept (keep_last 3), and best.
    writeTinyNpz(data, { train: 32, val: 8, test: 8 });
    trained = join(dir, 'trained');
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
      await fallsBackInOneLine(
        name,
        run,
        new RegExp(`^warning: ${escape(ckpt(run, 4))} is damaged \\(decoder/weights\\.bin: .*\\); using step-0000003$`),
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
    await fallsBackInOneLine(
      'sample',
      run,
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
    await fallsBackInOneLine(
      'sample',
      run,
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
      [
        folder,
        /^error: \S*just-a-folder is not a run directory: no config\.yaml \(a run directory holds config\.yaml and checkpoints\/\)$/,
      ],
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
});

describe('disk-full: a run out of disk space stops in one line, its last checkpoint intact', () => {
  /** Mounts a tmpfs of `size` on a fresh folder; the reason it cannot, instead, when it cannot. */
  function mountTmpfs(size: string): { dir: string } | { reason: string } {
    if (process.getuid?.() !== 0) return { reason: 'mounting a tmpfs needs root' };
    const dir = mkdtempSync(join(tmpdir(), 'medvae-full-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      return { reason: `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}` };
    }
    return { dir };
  }

  function unmount(dir: string): void {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }

  /** Leaves `keep` bytes free on the filesystem of `dir`. */
  function fillUp(dir: string, keep: number): void {
    const fs = statfsSync(dir);
    writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - keep)));
  }

  test('a checkpoint or picture write that runs out of space stops the run in one line; the previous checkpoint stays intact', async (t) => {
    const mounted = mountTmpfs('8m');
    if ('reason' in mounted) {
      t.skip(mounted.reason);
      return;
    }
    const data = join(tmpdir(), `medvae-full-data-${process.pid}.npz`);
    try {
      writeTinyNpz(data, { train: 48, val: 8, test: 8 });
      const run = join(mounted.dir, 'run');
      const common = ['--backend', 'wasm', '--log-format', 'plain'];
      const first = await medvae(['train', '--config', 'configs/smoke.yaml', '--data', data, '--epochs', '1', '--out', run, ...common]);
      assert.equal(first.status, 0, first.stderr);
      const [ckpt] = listCheckpoints(join(run, 'checkpoints'));
      assert.ok(ckpt?.endsWith('step-0000003'));

      // Room for the pictures but not the checkpoint, then not even for the pictures.
      for (const [keep, writing, inProcess] of [
        [256 * 1024, /\/checkpoints\/step-0000006/, false],
        [16 * 1024, /\/samples\/epoch-0002\.png/, true],
      ] as const) {
        fillUp(mounted.dir, keep);
        const args = ['train', '--resume', run, '--epochs', '2', ...common];
        const full = inProcess ? await medvae(args) : medvaeProcess(args);
        assert.equal(full.status, 1, full.stderr);
        const last = full.stderr.trim().split('\n').at(-1)!;
        assert.match(
          last,
          /^error: no space left on the device writing \S+: free some space there .*; the last checkpoint \S+step-0000003 is intact$/,
        );
        assert.match(last, writing);
        assert.doesNotMatch(full.stderr, /\n\s+at /);
        assert.deepEqual(listCheckpoints(join(run, 'checkpoints')), [ckpt]);
        verifyCheckpoint(ckpt!);
        assert.deepEqual(
          readdirSync(join(run, 'checkpoints')).filter((f) => f.startsWith('.')),
          [],
          'no temporary left behind',
        );
        rmSync(join(mounted.dir, 'filler'));
      }

      // Space freed: the same command continues from the intact checkpoint.
      const again = await medvae(['train', '--resume', run, '--epochs', '2', ...common]);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /resumed from \S+step-0000003/);
    } finally {
      unmount(mounted.dir);
      rmSync(data, { force: true });
    }
  });
});
