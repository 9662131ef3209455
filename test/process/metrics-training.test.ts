// A real Prometheus scrapes real training runs: `medvae train` and a 2-worker `medvae-dist`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort, prometheusBinary, promtoolBinary, runPromtool, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = tempDir('medvae-prom-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 48, val: 8, test: 8 });
const skip =
  prometheusBinary && promtoolBinary
    ? false
    : 'skipped: Debian prometheus/promtool not installed (.ci/install-system-deps.sh installs them)';

async function training(bin: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin', bin),
      ...args,
      '--config',
      'configs/smoke.yaml',
      '--data',
      data,
      '--epochs',
      '500',
      '--backend',
      'wasm',
      '--log-format',
      'plain',
      '--metrics-port',
      String(port),
      '--out',
      join(dir, `${bin}-${port}`),
    ],
    { cwd: ROOT, stdio: 'ignore' },
  );
  // The endpoint answers once the process is up.
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/metrics`)).ok) return child;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGKILL');
  throw new Error(`${bin} never served metrics on ${port}`);
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/**
 * The training and a Prometheus scraping it, started side by side (its first scrapes
 * of a target not yet up count as failed ones), so that the training computes for less time before
 * the checks. Either failing to start stops the other.
 */
async function trainingAndPrometheus(bin: string, args: string[], port: number, job: string): Promise<[ChildProcess, RunningPrometheus]> {
  const [child, prom] = await Promise.allSettled([
    training(bin, args, port),
    startPrometheus({ jobs: [{ job, targets: [`127.0.0.1:${port}`] }] }),
  ]);
  if (child.status === 'fulfilled' && prom.status === 'fulfilled') return [child.value, prom.value];
  if (child.status === 'fulfilled') await stop(child.value);
  if (prom.status === 'fulfilled') await prom.value.stop();
  throw child.status === 'rejected' ? child.reason : (prom as PromiseRejectedResult).reason;
}

test('medvae train: Prometheus scrapes steps that increase and finite loss gauges; promtool finds no lint problems', { skip }, async () => {
  const port = await freePort();
  const [child, prom] = await trainingAndPrometheus('medvae.js', ['train'], port, 'medvae');
  try {
    // Two scrapes that saw the step count move: no separate wait for scrapes, each second of which
    // the training spends computing.
    const first = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > 0, 60_000);
    const later = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > first[0]!.value, 60_000);
    assert.ok(later[0]!.value > first[0]!.value);
    const losses = await prom.waitFor('medvae_loss{term="loss"}', undefined, 30_000);
    assert.ok(
      losses.every((s) => Number.isFinite(s.value)),
      JSON.stringify(losses),
    );
    const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const lint = await runPromtool(['check', 'metrics'], scrape);
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    assert.equal((lint.stdout + lint.stderr).trim(), '');
  } finally {
    await prom.stop();
    await stop(child);
  }
});

test('medvae-dist --cpu-workers 2: one endpoint on the agent shows both ranks', { skip }, async () => {
  const port = await freePort();
  const [child, prom] = await trainingAndPrometheus('medvae-dist.js', ['--cpu-workers', '2'], port, 'medvae-dist');
  try {
    const ranks = await prom.waitFor('medvae_loss{term="loss"}', (s) => new Set(s.map((x) => x.metric.rank)).size === 2, 90_000);
    assert.deepEqual([...new Set(ranks.map((s) => s.metric.rank))].sort(), ['0', '1']);
    assert.ok(ranks.every((s) => Number.isFinite(s.value)));
    const up = await prom.waitFor('medvae_worker_up == 1', (s) => s.length === 2, 30_000);
    assert.deepEqual(up.map((s) => s.metric.rank).sort(), ['0', '1']);
    const first = await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > 0, 60_000);
    await prom.waitFor('medvae_train_steps_total', (s) => s.length === 1 && s[0]!.value > first[0]!.value, 60_000);
    const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const lint = await runPromtool(['check', 'metrics'], scrape);
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  } finally {
    await prom.stop();
    await stop(child);
  }
});
