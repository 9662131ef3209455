// A chaos run: `medvae-dist --cpu-workers 2 --max-restarts 10` while a driver SIGKILLs or SIGSTOPs
// a random worker at a random time after each (re)start. Resume is exact, so the final weights and
// optimizer moments must equal an undisturbed run's bit for bit. Two faults here; a soak with
// MEDVAE_CHAOS_FAULTS=N (and MEDVAE_CHAOS_EPOCHS, MEDVAE_CHAOS_SEED).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { Rng } from '../helpers/fuzz.ts';
import { latestCheckpoint, readState } from '../../src/run/checkpoint.ts';
import { verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const FAULTS = Number(process.env.MEDVAE_CHAOS_FAULTS ?? 2);
const EPOCHS = Number(process.env.MEDVAE_CHAOS_EPOCHS ?? 12);
const rng = new Rng(Number(process.env.MEDVAE_CHAOS_SEED ?? 5));
const dir = mkdtempSync(join(tmpdir(), 'medvae-chaos-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'tiny.npz');
// 48 images at batch 16: 3 steps an epoch (12 epochs, so that the run outlasts the faults); a checkpoint every 2 steps.
writeTinyNpz(data, { train: 48, val: 8, test: 8 });
const args = [
  '--cpu-workers',
  '2',
  ...smokeFlags(data),
  '--epochs',
  String(EPOCHS),
  '--set',
  'output.checkpoint_every_steps=2',
  '--metrics-port',
  '0',
];

/** Worker processes of an agent, by rank (read from their environment). */
function workersOf(parent: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parent) continue;
      if (/MEDVAE_RANK=\d+/.test(readFileSync(`/proc/${entry}/environ`, 'latin1'))) out.push(Number(entry));
    } catch {
      /* ended while we looked */
    }
  }
  return out;
}

/** The bytes that hold numbers in a run's newest checkpoint: every network's weights and the optimizer moments. */
function finalDigests(runDir: string): Record<string, string> {
  const ckpt = latestCheckpoint(join(runDir, 'checkpoints'))!;
  verifyCheckpoint(ckpt);
  const out: Record<string, string> = { step: String(readState(ckpt).step) };
  for (const f of ['encoder/weights.bin', 'decoder/weights.bin', 'optimizer-model.bin'])
    out[f] = createHash('sha256')
      .update(readFileSync(join(ckpt, f)))
      .digest('hex');
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test(`chaos: ${FAULTS} random SIGKILL/SIGSTOP faults on 2 workers, final weights equal an undisturbed run bit for bit`, async (t) => {
  const calm = join(dir, 'calm');
  const r = spawnSync(process.execPath, [DIST, ...args, '--out', calm], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);

  const started = Date.now();
  const run = join(dir, 'chaos');
  // A stopped worker is found by the step timeout; 8 s, not less: on two cores shared with other test
  // files a healthy step can take seconds, and a false 'hung' would add a restart no fault caused.
  const child = spawn(process.execPath, [DIST, ...args, '--max-restarts', '10', '--step-timeout', '8', '--out', run], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let progress = 0;
  const onData = (d: Buffer): void => {
    output += d.toString();
    progress += (d.toString().match(/ step \d+\/\d+ \|/g) ?? []).length;
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let exited = false;
  void exit.then(() => {
    exited = true;
  });

  const faults: string[] = [];
  for (let f = 0; f < FAULTS && !exited; f++) {
    // Strike only once the workers of this attempt have made progress, at a random moment after.
    const seen = progress;
    while (!exited && progress === seen) await sleep(50);
    await sleep(rng.int(1500));
    const workers = workersOf(child.pid!);
    if (exited || workers.length === 0) break;
    const victim = rng.pick(workers);
    const signal = rng.next() < 0.5 ? 'SIGKILL' : 'SIGSTOP';
    try {
      process.kill(victim, signal);
      faults.push(signal);
    } catch {
      /* it ended on its own in between */
    }
    const restarts = (output.match(/restarting all 2 workers/g) ?? []).length;
    while (!exited && (output.match(/restarting all 2 workers/g) ?? []).length === restarts) await sleep(50);
  }
  const code = await exit;
  assert.equal(code, 0, output);
  const restarts = Number(/(\d+) restart\(s\)/.exec(output)?.[1] ?? -1);
  t.diagnostic(
    `chaos ${JSON.stringify({ faults: faults.length, kinds: faults, restarts, epochs: EPOCHS, minutes: Number(((Date.now() - started) / 60_000).toFixed(2)) })}`,
  );
  assert.ok(faults.length >= Math.min(FAULTS, 1), `faults injected: ${faults.length}`);
  // A fault that lands as the run ends may meet a worker that has already reported: no restart then.
  assert.ok(restarts >= 1 && restarts <= faults.length, `${restarts} restart(s) for ${faults.length} fault(s)\n${output}`);
  assert.deepEqual(finalDigests(run), finalDigests(calm));
  assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.')).length, 0, 'no temporary left behind');
});
