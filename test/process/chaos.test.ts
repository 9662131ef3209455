// A chaos run: `medvae-dist --cpu-workers 2 --max-restarts 10` while a driver SIGKILLs or SIGSTOPs
// a random worker a random number of steps into each (re)start. Resume is exact, so the final
// weights and optimizer moments must equal an undisturbed run's bit for bit. Two faults here, one of
// each kind in a random order: with them this run is also dist-training's test of a worker killed
// mid-run under --max-restarts (named, all restarted from the last checkpoint, finished) and of a hung
// worker tripping the step timeout (named, killed). A soak: MEDVAE_CHAOS_FAULTS=N (and
// MEDVAE_CHAOS_EPOCHS, MEDVAE_CHAOS_SEED), each fault's kind then drawn at random.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { startProcess, workersOf } from '../helpers/dist-process.ts';
import { Rng } from '../helpers/fuzz.ts';
// run-checkpoint.ts, not checkpoint.ts, which would load TF.js into this process (about a second of CPU).
import { latestCheckpoint } from '../../src/run/run-checkpoint.ts';
import { verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const FAULTS = Number(process.env.MEDVAE_CHAOS_FAULTS ?? 2);
// 3 steps an epoch; each fault strikes within 4 steps of its attempt's first (a step later when the
// driver looks late), and its restart goes back at most 2 steps (a checkpoint every 2): 6 steps a
// fault leave the run time to outlast them all. The default seed's two strike 4 and 3 steps in: the
// last by about step 8 of 12.
const EPOCHS = Number(process.env.MEDVAE_CHAOS_EPOCHS ?? Math.max(4, 2 * FAULTS));
const rng = new Rng(Number(process.env.MEDVAE_CHAOS_SEED ?? 5));
const dir = mkdtempSync(join(tmpdir(), 'medvae-chaos-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'tiny.npz');
// 48 images at batch 16: 3 steps an epoch; a checkpoint every 2 steps. 16x16 images and two narrow
// conv layers: exact resume does not depend on the model's size, and a step costs little next to a
// worker's start.
writeTinyNpz(data, { train: 48, val: 8, test: 8, size: 16 });
const MODEL = ['model.image_size=16', 'model.hidden_dims=[4, 8]', 'model.latent_dim=4'];
const args = [
  '--cpu-workers',
  '2',
  ...smokeFlags(data),
  ...MODEL.flatMap((s) => ['--set', s]),
  '--epochs',
  String(EPOCHS),
  '--set',
  'output.checkpoint_every_steps=2',
  '--metrics-port',
  '0',
];
const STEP_TIMEOUT_S = 8;

/** The bytes that hold numbers in a run's newest checkpoint: every network's weights and the optimizer moments. */
function finalDigests(runDir: string): Record<string, string> {
  const ckpt = latestCheckpoint(join(runDir, 'checkpoints'))!;
  verifyCheckpoint(ckpt);
  // state.json, checked against the manifest just now: the step is all this reads of it.
  const { step } = JSON.parse(readFileSync(join(ckpt, 'state.json'), 'utf8')) as { step: number };
  const out: Record<string, string> = { step: String(step) };
  for (const f of ['encoder/weights.bin', 'decoder/weights.bin', 'optimizer-model.bin'])
    out[f] = createHash('sha256')
      .update(readFileSync(join(ckpt, f)))
      .digest('hex');
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Fault {
  signal: 'SIGKILL' | 'SIGSTOP';
  rank: number;
  pid: number;
}

test(`chaos: ${FAULTS} random SIGKILL/SIGSTOP faults on 2 workers, each named and restarted from; final weights equal an undisturbed run bit for bit`, async (t) => {
  const calm = join(dir, 'calm');
  const r = spawnSync(process.execPath, [DIST, ...args, '--out', calm], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);

  const started = Date.now();
  const run = join(dir, 'chaos');
  // A stopped worker is found by the step timeout; 8 s, not less: on two cores shared with other test
  // files a healthy step can take seconds, and a false 'hung' would add a restart no fault caused.
  const d = startProcess(
    [process.execPath, DIST, ...args, '--max-restarts', '10', '--step-timeout', String(STEP_TIMEOUT_S), '--out', run],
    ROOT,
  );
  let exited = false;
  void d.exit.then(() => {
    exited = true;
  });
  const count = (re: RegExp): number => (d.output().match(re) ?? []).length;
  const progress = (): number => count(/ step \d+\/\d+ \|/g);
  const restartsSoFar = (): number => count(/restarting all 2 workers/g);

  // The default run takes one fault of each kind, in a random order; a soak draws each kind.
  const order: Fault['signal'][] = rng.next() < 0.5 ? ['SIGKILL', 'SIGSTOP'] : ['SIGSTOP', 'SIGKILL'];
  const faults: Fault[] = [];
  for (let f = 0; f < FAULTS && !exited; f++) {
    // Strike 1 to 4 steps into this attempt: the run's remaining steps outlast it however fast steps are.
    const target = progress() + 1 + rng.int(4);
    while (!exited && progress() < target) await sleep(20);
    const workers = [...workersOf(d.child.pid!)];
    if (exited || workers.length === 0) break;
    const [rank, pid] = rng.pick(workers);
    const signal = f < 2 ? order[f]! : rng.next() < 0.5 ? 'SIGKILL' : 'SIGSTOP';
    process.kill(pid, signal);
    faults.push({ signal, rank, pid });
    const restarts = restartsSoFar();
    while (!exited && restartsSoFar() === restarts) await sleep(50);
  }
  const code = await d.exit;
  const output = d.output();
  assert.equal(code, 0, output);
  const restarts = Number(/finished at step \d+ .* (\d+) restart\(s\)/.exec(output)?.[1] ?? -1);
  t.diagnostic(
    `chaos ${JSON.stringify({ faults: faults.length, kinds: faults.map((f) => f.signal), restarts, epochs: EPOCHS, minutes: Number(((Date.now() - started) / 60_000).toFixed(2)) })}`,
  );
  assert.equal(faults.length, FAULTS, `faults injected: ${faults.length}\n${output}`);
  assert.equal(restarts, faults.length, `one restart per fault\n${output}`);
  // Each fault named, the worker by rank, device and pid, and the workers restarted from the last checkpoint.
  for (const f of faults) {
    const worker = `worker rank ${f.rank} \\(cpu:${f.rank}, pid ${f.pid}\\)`;
    const why =
      f.signal === 'SIGKILL'
        ? 'killed by SIGKILL'
        : `made no progress for \\d+ s at step \\d+ \\(step timeout ${STEP_TIMEOUT_S} s\\): hung`;
    assert.match(
      output,
      new RegExp(`${worker} ${why}.*; restarting all 2 workers from ${escape(run)}/checkpoints/step-\\d+ \\(restart \\d+ of 10\\)`),
      output,
    );
    // A stopped worker is killed, not left behind (a stopped process still exists until it is).
    assert.throws(() => process.kill(f.pid, 0), `the ${f.signal === 'SIGSTOP' ? 'hung' : 'killed'} worker pid ${f.pid} is gone`);
  }
  assert.match(output, new RegExp(`finished at step ${EPOCHS * 3} .*with 2 workers, ${faults.length} restart\\(s\\)`));
  assert.deepEqual(finalDigests(run), finalDigests(calm));
  assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.')).length, 0, 'no temporary left behind');
});
