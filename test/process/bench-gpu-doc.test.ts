// bench/gpu-doc.ts turns bench/gpu.sh's JSON lines into docs/gpu.md's "Measured" section: hardware
// results as tables stamped with commit, machine and adapter; software-adapter lines never counted
// as GPU figures; and, with no hardware results, the paragraph docs/gpu.md carries now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/temp-dir.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = tempDir('medvae-gpu-doc-');

/** The block gpu-doc.ts would write, from these lines (--dry-run: docs/gpu.md is not touched). */
function block(lines: object[] | undefined, ...flags: string[]): string {
  const args = ['--import', 'tsx', join(ROOT, 'bench', 'gpu-doc.ts'), '--dry-run', ...flags];
  if (lines !== undefined) {
    const file = join(dir, `results-${Math.random().toString(36).slice(2)}.jsonl`);
    writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\nnot json: a log line\n`);
    args.push(file);
  }
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trimEnd();
}

const machine = { os: 'Linux 6.8.0 x64', cpus: 32, cpu_model: 'AMD EPYC 9354', memory_gb: 251.5, node: 'v20.20.2' };
const report = {
  webgpu: {
    adapters: [0, 1].map((index) => ({
      index,
      backend: 'vulkan',
      name: `NVIDIA L4 #${index}`,
      vendor: 'nvidia',
      architecture: 'lovelace',
      device: '',
      driver: '550.54.15',
      software: false,
      limits: { maxBufferSize: 2 ** 32, maxStorageBufferBindingSize: 2 ** 31 },
    })),
    why: null,
  },
  nvidia: { driver: '550.54.15', source: 'nvidia-smi', gpus: [] },
  tensorflow: { state: 'absent', why: 'tfjs-node-gpu not installed' },
};

function run(commit: string, software: boolean, date: string): object[] {
  const stamp = { commit, host: 'gpu-box', software };
  return [
    { bench: 'meta', ...stamp, dirty: false, date, machine },
    { bench: 'gpus', ...stamp, date, report },
    {
      bench: 'step',
      ...stamp,
      key: 'step webgpu vae 64x64 batch 64',
      date,
      model: 'vae',
      image_size: 64,
      batch: 64,
      backend: 'webgpu',
      adapter: 'NVIDIA L4 #0',
      images_per_s: 1234.5,
      step_ms_median: 51.8,
      peak_rss_mb: 900,
      tensors_leaked: 0,
    },
    {
      bench: 'step',
      ...stamp,
      key: 'step webgpu vaegan 256x256 batch 16',
      date,
      model: 'vaegan',
      image_size: 256,
      batch: 16,
      backend: 'webgpu',
      error: 'Buffer size exceeds the limit | killed',
    },
    { bench: 'skip', ...stamp, key: 'step tensorflow vae 64x64 batch 64', why: 'tfjs-node-gpu not installed' },
    {
      bench: 'dist',
      ...stamp,
      key: 'dist 1',
      date,
      workers: 1,
      image_size: 64,
      global_batch: 64,
      images_per_s: 1000,
      step_ms_median: 64,
      allreduce_ms_median: 0,
    },
    {
      bench: 'dist',
      ...stamp,
      key: 'dist 2',
      date,
      workers: 2,
      image_size: 64,
      global_batch: 64,
      images_per_s: 1800,
      step_ms_median: 35.6,
      allreduce_ms_median: 4.25,
    },
  ];
}

test('no results, or only software ones: the page says plainly that nothing has run on a GPU, as docs/gpu.md does now', () => {
  const none = block(undefined);
  assert.match(none, /^\*\*Not measured on GPU hardware yet\.\*\*/);
  assert.equal(block(run('abc1234', true, '2026-12-06T10:00:00.000Z')), none, 'software lines are never GPU figures');
  const page = readFileSync(join(ROOT, 'docs', 'gpu.md'), 'utf8');
  const current = page.slice(
    page.indexOf('<!-- measured:start -->') + '<!-- measured:start -->'.length,
    page.indexOf('<!-- measured:end -->'),
  );
  assert.equal(current.trim(), none, 'docs/gpu.md holds what the generator writes with no results');
});

test('hardware results: the machine, commit and adapters, one row per case, failures and skips named, speed-up over one GPU', () => {
  const text = block([...run('old0000', false, '2026-12-01T10:00:00.000Z'), ...run('abc1234', false, '2026-12-06T10:00:00.000Z')]);
  assert.match(text, /^### gpu-box$/m);
  assert.match(text, /at commit abc1234 on 2026-12-06; Linux 6\.8\.0 x64, 32 × AMD EPYC 9354, 251\.5 GB, Node v20\.20\.2\./);
  assert.doesNotMatch(text, /old0000/, 'only the latest commit of a machine');
  assert.match(
    text,
    /WebGPU adapters: 0: NVIDIA L4 #0 \(nvidia, lovelace, vulkan, 550\.54\.15\); 1: NVIDIA L4 #1 .*NVIDIA driver 550\.54\.15; tfjs-node-gpu not installed\./,
  );
  assert.match(text, /^\| Vanilla VAE \| 64 \| 64 \| webgpu \| NVIDIA L4 #0 \| 1234\.50 \| 51\.8 \| 900 \| 0 \|$/m);
  assert.match(text, /^\| VAE-GAN \| 256 \| 16 \| webgpu \| \| failed: Buffer size exceeds the limit \/ killed \|/m);
  assert.match(text, /^\| 2 \| 64 \| 64 \| 1800\.00 \| 1\.80× \| 35\.6 \| 4\.25 \|$/m);
  assert.match(text, /^- step tensorflow vae 64x64 batch 64: tfjs-node-gpu not installed$/m);
  assert.doesNotMatch(text, /SOFTWARE/);
});

test('--include-software shows software results only under a heading that says they are not GPU figures', () => {
  const text = block(run('abc1234', true, '2026-12-06T10:00:00.000Z'), '--include-software');
  assert.match(text, /^### gpu-box — SOFTWARE ADAPTER, NOT GPU FIGURES$/m);
  assert.match(text, /^\| Vanilla VAE \| 64 \| 64 \| webgpu/m);
});
