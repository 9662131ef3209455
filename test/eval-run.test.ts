// `medvae eval` on real runs: a tiny VAE and CVAE trained by the real `medvae train` on a dataset
// the test writes, evaluated through the commander wiring, eval.json parsed back.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerEvalCommands } from '../src/cli/eval-command.ts';
import type { EvalFile } from '../src/eval/eval-file.ts';
import { formatNumber } from '../src/eval/eval-file.ts';
import { writeTinyNpz } from './helpers/tiny-data.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'medvae.js');
const dir = mkdtempSync(join(tmpdir(), 'medvae-eval-run-'));
const data = join(dir, 'tiny.npz');
const vaeRun = join(dir, 'runs', 'vae');
const cvaeRun = join(dir, 'runs', 'cvae');

function train(out: string, extra: string[]): void {
  const args = ['train', '--config', 'configs/smoke.yaml', '--data', data, '--backend', 'wasm', '--log-format', 'plain', '--max-steps', '3', '--out', out, ...extra];
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
}

/** Runs `medvae eval|report ...` in-process through the real commander wiring; returns stdout. */
async function medvae(args: string[]): Promise<string> {
  const program = new Command('medvae').exitOverride();
  const chunks: string[] = [];
  registerEvalCommands(program, { write: (text: string) => chunks.push(text) });
  await program.parseAsync(['node', 'medvae', ...args]);
  const failed = process.exitCode;
  process.exitCode = 0;
  assert.ok(!failed, `medvae ${args.join(' ')} failed`);
  return chunks.join('');
}

const evalArgs = (run: string, seed: string): string[] => ['eval', '--run', run, '--n', '16', '--seed', seed, '--backend', 'wasm', '--feature-steps', '20'];

before(() => {
  writeTinyNpz(data, { train: 48, val: 8, test: 20, classes: 3 });
  train(vaeRun, []);
  train(cvaeRun, ['--set', 'model.name=cvae']);
});

test('eval writes eval.json, prints its numbers, and gives the same numbers twice', async () => {
  const out = await medvae(evalArgs(vaeRun, '4'));
  const file = JSON.parse(readFileSync(join(vaeRun, 'eval.json'), 'utf8')) as EvalFile;
  assert.equal(file.format, 'medvae-eval');
  assert.equal(file.model.name, 'vae');
  assert.equal(file.model.step, 3);
  assert.equal(file.split, 'test');
  // 16 of the 20 test images, 16 samples.
  assert.equal(file.metrics.reconstruction.n, 16);
  assert.equal(file.metrics.sample_quality.n_generated, 16);
  assert.equal(file.metrics.tstr, null);
  const r = file.metrics.reconstruction;
  assert.ok(r.mse > 0 && r.mse < 4, `mse ${r.mse}`);
  assert.ok(Math.abs(r.psnr - 10 * Math.log10(4 / r.mse)) < 1.5, 'psnr is near that of the mean MSE (mean of logs <= log of mean)');
  assert.ok(r.psnr >= 10 * Math.log10(4 / r.mse) - 1e-9, 'Jensen: mean per-image PSNR >= PSNR of mean MSE');
  assert.ok(r.ssim > -1 && r.ssim <= 1 && r.ms_ssim > 0 && r.ms_ssim <= 1);
  assert.ok(Number.isFinite(file.metrics.sample_quality.frechet_distance));
  assert.match(out, new RegExp(`PSNR \\(dB\\)\\s+${formatNumber(r.psnr).replace('.', '\\.')}`));
  // The feature net was cached beside the runs.
  const cache = join(dir, 'runs', '.feature-nets');
  assert.deepEqual(readdirSync(cache), [file.metrics.sample_quality.feature_net.id]);

  await medvae(evalArgs(vaeRun, '4'));
  const again = JSON.parse(readFileSync(join(vaeRun, 'eval.json'), 'utf8')) as EvalFile;
  assert.deepEqual(again.metrics, file.metrics);
  assert.notEqual(again.meta.created_at, undefined);
});

test('eval of a conditional run reports TSTR next to TRTR', async () => {
  await medvae(evalArgs(cvaeRun, '4'));
  const file = JSON.parse(readFileSync(join(cvaeRun, 'eval.json'), 'utf8')) as EvalFile;
  assert.equal(file.model.name, 'cvae');
  assert.ok(file.metrics.tstr);
  assert.equal(file.metrics.tstr.label_kind, 'class');
  assert.equal(file.metrics.tstr.n_train, 16);
  for (const s of [file.metrics.tstr.tstr, file.metrics.tstr.trtr]) assert.ok(s.accuracy >= 0 && s.accuracy <= 1);
  // Same dataset file, seed and recipe: the same feature net as the VAE's.
  assert.equal(readdirSync(join(dir, 'runs', '.feature-nets')).length, 1);
});

test('report puts both runs side by side with their eval numbers and the real grids inline', async () => {
  const out = await medvae(['report', '--run', vaeRun, '--compare', cvaeRun]);
  const path = join(vaeRun, 'report.html');
  assert.equal(out, `wrote ${path}\n`);
  const html = readFileSync(path, 'utf8');
  for (const run of [vaeRun, cvaeRun]) {
    const file = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as EvalFile;
    assert.ok(html.includes(`>${formatNumber(file.metrics.reconstruction.psnr)}<`), `PSNR of ${run}`);
  }
  // Samples and reconstructions of both runs, plus both in the side-by-side row.
  assert.equal(html.match(/src="data:image\/png;base64,/g)?.length, 6);
  assert.ok(!/(src|href)="(https?:|file:|\/)/.test(html), 'nothing outside the file is referenced');
});

test('eval of a folder that is not a run fails with a message naming it', async () => {
  const program = new Command('medvae').exitOverride();
  registerEvalCommands(program);
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    errors.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'medvae', 'eval', '--run', join(dir, 'nope')]);
  } finally {
    process.stderr.write = write;
  }
  assert.equal(process.exitCode, 1);
  process.exitCode = 0;
  assert.match(errors.join(''), /nope.*not a run directory/);
  assert.equal(existsSync(join(dir, 'nope', 'eval.json')), false);
});

test('cleanup', () => {
  rmSync(dir, { recursive: true, force: true });
});
