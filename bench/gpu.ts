// The GPU measurements behind docs/gpu.md's "Measured" section, for a machine with a real GPU (bash
// bench/gpu.sh runs it): what `medvae gpus` sees, one training step of the VAE and the VAE-GAN at
// 64x64 batch 64 and 256x256 batch 16 on webgpu (and on tensorflow where tfjs-node-gpu is installed),
// and `medvae-dist --gpus 0..N-1 --backend webgpu` against one GPU. Appends one JSON line per result
// to --out, each stamped with the commit, date, host and adapter, and is resumable: a case already
// measured at this commit on this host is skipped (and said so), a failed one is tried again.
//
//   node --import tsx bench/gpu.ts --out FILE [--software] [--tiny] [--steps N] [--dist-steps N] [--timeout S]
//
// --software lets webgpu run on a software adapter (SwiftShader) and marks every line "software": true;
// bench/gpu-doc.ts never counts those as hardware figures. --tiny shrinks every case, so that a
// software run checks the script end to end in minutes.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { GpuReport } from '../src/backend/gpu-report.ts';
import { gitCommit, jsonLines, ROOT, type BenchLine } from './doc-tools.ts';

interface StepCase {
  model: 'vae' | 'vaegan';
  size: number;
  batch: number;
}

/** What docs/gpu.md reports: the two models at the two sizes the project trains (RetinaMNIST 64, Gleason 256). */
const STEP_CASES: StepCase[] = [
  { model: 'vae', size: 64, batch: 64 },
  { model: 'vaegan', size: 64, batch: 64 },
  { model: 'vae', size: 256, batch: 16 },
  { model: 'vaegan', size: 256, batch: 16 },
];
/** SwiftShader takes tens of seconds for one 64x64 step of 4 images: the smallest the default models take. */
const TINY_STEP_CASES: StepCase[] = [
  { model: 'vae', size: 32, batch: 2 },
  { model: 'vaegan', size: 32, batch: 2 },
];

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    software: { type: 'boolean', default: false },
    tiny: { type: 'boolean', default: false },
    steps: { type: 'string' },
    'dist-steps': { type: 'string' },
    timeout: { type: 'string', default: '1800' },
  },
});
if (values.out === undefined)
  throw new Error('usage: bench/gpu.ts --out FILE [--software] [--tiny] [--steps N] [--dist-steps N] [--timeout S]');
const out = values.out;
const positive = (flag: string, value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got '${value}'`);
  return n;
};
const software = values.software;
const tiny = values.tiny;
const steps = positive('steps', values.steps ?? (tiny ? '1' : '5'));
const distSteps = positive('dist-steps', values['dist-steps'] ?? (tiny ? '2' : '30'));
const timeoutMs = positive('timeout', values.timeout) * 1000;

const commit = gitCommit();
const host = hostname();
/** Every line this run writes carries these, so that a rerun can tell what is already done. */
const stamp = { commit, host, software };

mkdirSync(dirname(out), { recursive: true });
const earlier = existsSync(out)
  ? jsonLines<BenchLine & { key?: string; commit?: string; host?: string; software?: boolean; error?: string }>(out)
  : [];
const done = new Set(
  earlier
    .filter((l) => l.key !== undefined && l.commit === commit && l.host === host && l.software === software && l.error === undefined)
    .map((l) => l.key!),
);
const summary = { measured: [] as string[], skipped: [] as string[], failed: [] as string[] };

function write(line: object): void {
  appendFileSync(out, `${JSON.stringify(line)}\n`);
}

function say(line: string): void {
  process.stderr.write(`gpu bench: ${line}\n`);
}

function skip(key: string, why: string, record = true): void {
  summary.skipped.push(`${key}: ${why}`);
  say(`skip ${key}: ${why}`);
  if (record) write({ bench: 'skip', ...stamp, key, why, date: new Date().toISOString() });
}

/** Runs a command to its end (or --timeout), returning its exit code and what it printed. */
function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output });
    });
  });
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(-600);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

// What this machine offers, as `medvae gpus` sees it.
const listing = await run([join(ROOT, 'bin', 'medvae.js'), 'gpus', '--json', ...(software ? ['--allow-software-gpu'] : [])]);
if (listing.code !== 0) throw new Error(`medvae gpus failed: ${tail(listing.output)}`);
const report = JSON.parse(listing.stdout) as GpuReport;
const meta = await run(['--import', 'tsx', join(ROOT, 'bench', 'meta.ts')]);
const metaLine = JSON.parse(meta.stdout.split('\n').find((l) => l.startsWith('{')) ?? '{}') as BenchLine;
write({ ...metaLine, ...stamp, tiny });
write({ bench: 'gpus', ...stamp, date: new Date().toISOString(), report });

const adapters = report.webgpu.adapters.filter((a) => software || !a.software);
const pick = report.webgpu.webgpu;
const webgpuWhy =
  report.webgpu.why ??
  (pick === null || 'error' in pick
    ? (pick?.error ?? 'no adapter')
    : adapters.length === 0
      ? 'only a software adapter (give --software to use it)'
      : null);
const tensorflowWhy = report.tensorflow.state === 'installed' ? null : report.tensorflow.why;
const adapterName = pick !== null && !('error' in pick) ? pick.name : null;

// One training step per case and backend.
const cases = tiny ? TINY_STEP_CASES : STEP_CASES;
for (const backend of ['webgpu', 'tensorflow'] as const) {
  for (const c of cases) {
    const key = `step ${backend} ${c.model} ${c.size}x${c.size} batch ${c.batch}`;
    const why = backend === 'webgpu' ? webgpuWhy : tensorflowWhy;
    if (why !== null) {
      skip(key, why);
      continue;
    }
    if (done.has(key)) {
      skip(key, `already measured at commit ${commit} on ${host}`, false);
      continue;
    }
    say(`run ${key}`);
    const args = [
      '--import',
      'tsx',
      join(ROOT, 'bench', 'step.ts'),
      '--model',
      c.model,
      '--size',
      String(c.size),
      '--batch',
      String(c.batch),
    ];
    args.push('--backend', backend, '--steps', String(steps), ...(software && backend === 'webgpu' ? ['--allow-software-gpu'] : []));
    const r = await run(args);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    const date = new Date().toISOString();
    if (r.code !== 0 || line === undefined) {
      summary.failed.push(key);
      write({ bench: 'step', ...stamp, key, date, backend, model: c.model, image_size: c.size, batch: c.batch, error: tail(r.output) });
      say(`failed ${key}: ${tail(r.output)}`);
      continue;
    }
    summary.measured.push(key);
    write({ bench: 'step', ...stamp, key, date, ...(JSON.parse(line) as object) });
  }
}

// Data-parallel: one worker per GPU against one GPU alone. A software adapter is shared by every
// worker, so there two workers only prove the path.
const gpuCount = software ? 2 : adapters.length;
const workerCounts = gpuCount > 1 ? [1, gpuCount] : [1];
const globalBatch = tiny ? 4 : 64;
for (const workers of workerCounts) {
  const key = `dist webgpu vae ${tiny ? 32 : 64}x${tiny ? 32 : 64} batch ${globalBatch} workers ${workers}`;
  if (webgpuWhy !== null) {
    skip(key, webgpuWhy);
    continue;
  }
  if (done.has(key)) {
    skip(key, `already measured at commit ${commit} on ${host}`, false);
    continue;
  }
  const runDir = join(ROOT, 'runs', 'gpu-bench', `dist-${workers}`);
  rmSync(runDir, { recursive: true, force: true });
  const args = [
    join(ROOT, 'bin', 'medvae-dist.js'),
    '--gpus',
    Array.from({ length: workers }, (_, i) => i).join(','),
    '--backend',
    'webgpu',
  ];
  if (software) args.push('--allow-software-gpu');
  args.push('--config', join(ROOT, 'configs', tiny ? 'smoke.yaml' : 'vae_retinamnist.yaml'), '--max-steps', String(distSteps));
  args.push('--out', runDir, '--metrics-port', '0', '--log-format', 'plain');
  args.push('--set', `train.batch_size=${globalBatch}`, '--set', `train.micro_batch=${globalBatch / workers}`);
  say(`run ${key}`);
  const r = await run(args);
  const date = new Date().toISOString();
  const metrics = join(runDir, 'metrics.jsonl');
  const records = existsSync(metrics)
    ? readFileSync(metrics, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map(
          (l) =>
            JSON.parse(l) as {
              kind: string;
              step?: number;
              backend?: string;
              images_per_s?: number;
              step_ms?: number;
              allreduce_ms?: number;
            },
        )
    : [];
  const start = records.find((l) => l.kind === 'start');
  // The first steps compile shaders and fill allocators: time the rest.
  const warmup = Math.min(2, distSteps - 1);
  const timed = records.filter((l) => l.kind === 'step' && (l.step ?? 0) > warmup);
  const error =
    r.code !== 0
      ? tail(r.output)
      : start?.backend !== 'webgpu'
        ? `the run computed on ${start?.backend ?? 'an unknown backend'}, not webgpu`
        : timed.length === 0
          ? `no step after the ${warmup} warm-up step(s) in ${metrics}`
          : undefined;
  if (error !== undefined) {
    summary.failed.push(key);
    write({ bench: 'dist', ...stamp, key, date, workers, error });
    say(`failed ${key}: ${error}`);
    continue;
  }
  summary.measured.push(key);
  write({
    bench: 'dist',
    ...stamp,
    key,
    date,
    backend: 'webgpu',
    adapter: adapterName,
    model: 'vae',
    image_size: tiny ? 32 : 64,
    global_batch: globalBatch,
    workers,
    steps: timed.length,
    images_per_s: Number(median(timed.map((l) => l.images_per_s ?? 0)).toFixed(2)),
    step_ms_median: Number(median(timed.map((l) => l.step_ms ?? 0)).toFixed(1)),
    allreduce_ms_median: Number(median(timed.map((l) => l.allreduce_ms ?? 0)).toFixed(2)),
  });
}

say(`${summary.measured.length} measured, ${summary.skipped.length} skipped, ${summary.failed.length} failed; results in ${out}`);
for (const s of summary.skipped) say(`  skipped ${s}`);
for (const f of summary.failed) say(`  failed ${f}`);
console.log(JSON.stringify({ out, commit, host, software, ...summary }));
