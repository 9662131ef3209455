// Side by side with the PyTorch peer: for each model and thread count, `bench:step --backend
// native` and the peer (../shared/peer/run.sh) take turns, round after round (the order swapped
// every round), and every pair gives a ratio of images/s. This machine's speed drifts by up to
// 25% over minutes, so only ratios of runs made in the same minutes mean anything.
//
//   node --import tsx bench/vs-peer.ts [--models vae,mssim,vaegan] [--threads 1,2] [--rounds 3]
//     [--steps 5] [--size 64] [--batch 64] [--micro-batch M] [--wasm] [--out bench/out/native-vs-peer.json]
//
// --micro-batch has medvae compute each step over micro-batches of at most M images (as
// train.micro_batch does, the way a 256x256 VAE-GAN fits in memory); the peer always runs the whole
// batch at once. --fresh-choices has every native run time its shapes anew (MEDVAE_NATIVE_CHOICES=off)
// in its untimed warm-up step, so that its peak RSS is a first run's.
// Prints one JSON line per run and a summary line per model and thread count; writes all of it,
// with the commit, date and machine, to --out (bench/native-doc.ts turns it into docs/native.md).
// --wasm also runs the wasm backend (one process, one core) in each round at the first thread count.
// Needs PyTorch for the peer: apt-get install -y python3-torch libopenblas0-openmp.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const PEER = process.env['MEDVAE_PEER'] ?? resolve(ROOT, '..', 'shared', 'peer', 'run.sh');
const PEER_INSTALL = 'apt-get install -y python3-torch libopenblas0-openmp';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'vae,mssim,vaegan' },
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '5' },
    size: { type: 'string', default: '64' },
    batch: { type: 'string', default: '64' },
    'micro-batch': { type: 'string' },
    'fresh-choices': { type: 'boolean', default: false },
    wasm: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/out/native-vs-peer.json' },
  },
});
const models = values.models.split(',');
const threadCounts = values.threads.split(',').map(Number);
const rounds = Number(values.rounds);

if (!existsSync(PEER)) {
  console.error(`vs-peer: the PyTorch peer is not at ${PEER} (set MEDVAE_PEER to its run.sh)`);
  process.exit(2);
}
if (spawnSync('/usr/bin/python3', ['-c', 'import torch']).status !== 0) {
  console.error(`vs-peer: the peer needs PyTorch: ${PEER_INSTALL}`);
  process.exit(2);
}

interface Run {
  side: 'native' | 'wasm' | 'peer';
  model: string;
  threads: number;
  round: number;
  images_per_s: number;
  step_ms_median: number;
  peak_rss_mb: number;
  load_average: number;
}

function lastJson(text: string): Record<string, unknown> {
  const line = text
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (line === undefined) throw new Error(`no JSON line in:\n${text.slice(-2000)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

function measure(side: Run['side'], model: string, threads: number, round: number): Run {
  const common = ['--steps', values.steps];
  const [command, args] =
    side === 'peer'
      ? [
          PEER,
          [
            '--model',
            model,
            '--image-size',
            values.size,
            '--batch',
            values.batch,
            '--threads',
            String(threads),
            ...common,
            '--warmup',
            '1',
            '--max-attempts',
            '1',
          ],
        ]
      : [
          process.execPath,
          [
            '--import',
            'tsx',
            join(ROOT, 'bench', 'step.ts'),
            '--model',
            model,
            '--size',
            values.size,
            '--batch',
            values.batch,
            '--backend',
            side,
            '--threads',
            String(threads),
            ...(values['micro-batch'] === undefined ? [] : ['--micro-batch', values['micro-batch']]),
            ...common,
          ],
        ];
  const load = loadavg()[0]!;
  const env = side === 'native' && values['fresh-choices'] ? { ...process.env, MEDVAE_NATIVE_CHOICES: 'off' } : process.env;
  const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: 1_200_000, env });
  if (r.status !== 0) throw new Error(`${side} ${model} threads ${threads} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const json = lastJson(r.stdout);
  const run: Run = {
    side,
    model,
    threads,
    round,
    images_per_s: Number(json['images_per_s']),
    step_ms_median: Number(json['step_ms_median']),
    peak_rss_mb: Math.round(Number(json['peak_rss_mb'])),
    load_average: Number(load.toFixed(2)),
  };
  console.log(JSON.stringify(run));
  return run;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const runs: Run[] = [];
const summaries: Record<string, unknown>[] = [];
for (const model of models) {
  for (const [t, threads] of threadCounts.entries()) {
    const ratios: number[] = [];
    const wasmRatios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const sides: Run['side'][] = values.wasm && t === 0 ? ['native', 'peer', 'wasm'] : ['native', 'peer'];
      if (round % 2 === 1) sides.reverse();
      const got = new Map(sides.map((side) => [side, measure(side, model, threads, round)]));
      runs.push(...got.values());
      const peer = got.get('peer')!.images_per_s;
      ratios.push(got.get('native')!.images_per_s / peer);
      if (got.has('wasm')) wasmRatios.push(got.get('wasm')!.images_per_s / peer);
    }
    const of = (side: Run['side']): number[] =>
      runs.filter((r) => r.side === side && r.model === model && r.threads === threads).map((r) => r.images_per_s);
    const summary = {
      model,
      threads,
      rounds,
      native_images_per_s: median(of('native')),
      peer_images_per_s: median(of('peer')),
      ...(wasmRatios.length ? { wasm_images_per_s: median(of('wasm')), wasm_vs_peer_median: Number(median(wasmRatios).toFixed(3)) } : {}),
      native_vs_peer: ratios.map((r) => Number(r.toFixed(3))),
      native_vs_peer_median: Number(median(ratios).toFixed(3)),
    };
    summaries.push(summary);
    console.log(JSON.stringify({ summary }));
  }
}

const git = (args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
const report = {
  commit: git(['rev-parse', '--short', 'HEAD']),
  // Uncommitted changes to what the measured runs execute (not to docs or other scripts).
  dirty: git(['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench/step.ts', 'package.json', 'package-lock.json']) !== '',
  date: new Date().toISOString(),
  machine: `${process.platform} ${process.arch}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`,
  image_size: Number(values.size),
  batch: Number(values.batch),
  ...(values['micro-batch'] === undefined ? {} : { micro_batch: Number(values['micro-batch']) }),
  steps: Number(values.steps),
  fresh_choices: values['fresh-choices'],
  summaries,
  runs,
};
mkdirSync(dirname(resolve(ROOT, values.out)), { recursive: true });
writeFileSync(resolve(ROOT, values.out), `${JSON.stringify(report, null, 1)}\n`);
console.error(`vs-peer: wrote ${values.out}`);
