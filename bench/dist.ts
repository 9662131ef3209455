// Data-parallel scaling of the real product: runs `bin/medvae-dist.js --cpu-workers w` on the bundled
// RetinaMNIST for each worker count and reads the run's metrics.jsonl back.
//   node --import tsx bench/dist.ts --model vae --size 64 --batch 64 --workers 1,2 --steps 10 [--warmup 2] [--micro n] [--overlap on,off] [--bucket-mb M] [--set key=value ...]
// With --nnodes N (root, iproute2), runs N agents of `--cpu-workers w` each, one per network namespace
// joined by veth pairs on a bridge, every link limited by tbf to --link-rate (scripts/netns.ts):
// the rendezvous, the ring and the gradients cross a real (if local) network.
// With --ceiling, runs w independent bench/step.ts processes at batch B/w side by side instead and
// prints their summed images/s: the most w processes can do on this machine with no collective.
// Prints one JSON line per worker count and overlap mode:
//   {"model","image_size","global_batch","micro_batch","workers","steps","gradient_mb","images_per_s","step_ms_median",
//    "allreduce_ms_median","comm_fraction","allreduce_wait_ms_median","transfer_fraction","peak_rss_mb_per_worker","peak_tensor_mb_rank0",
//    "nnodes","link_rate","overlap","in_backward_ms_median","exposed_comm_ms_median","exposed_comm_fraction","pause_ms_median",
//    "exposed_with_pauses_fraction"}
// exposed_comm is the part of the step the worker spends on communication and cannot compute: the
// all-reduce less the wait for a slower peer, plus (with overlap) in_backward_ms, the communication
// work the backward pass did itself (filling buckets; the ring's sending, receiving and summing in its
// pauses). overlap says whether gradient buckets were all-reduced while the backward pass ran (the
// default) or after it (`medvae-dist --no-overlap`). With overlap, allreduce_ms is the time after the
// backward pass, and its wait the part of it spent waiting for a slower peer's buckets. medvae-dist
// runs each ring on a thread of its own; a ring on the calling thread would instead pause the
// backward pass one event-loop turn at a time (pause_ms, which also runs whatever else is queued):
// exposed_with_pauses_fraction counts all of that as communication, an upper bound.
// Peak RSS is the kernel's high-water mark (VmHWM) of each worker process, polled from /proc for every w
// (w=1 trains in the medvae-dist process itself, w>=2 in forked workers/dist-worker.ts processes).
// peak_tensor_mb_rank0: the most tf.memory() held between micro-batches on rank 0 (weights, Adam
// moments, gradients), from its step records; metrics.jsonl is written by rank 0 only.
// allreduce_ms is rank 0's time in the all-reduce: transfer time plus any lag of the slower rank;
// allreduce_wait_ms the lag alone (until the peer's first frame arrived), and transfer_fraction the
// rest (reading, moving, reducing and re-uploading the gradients) as a fraction of the step.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { createTestNet, netnsSkipReason, sweepStale, type TestNet } from '../scripts/netns.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const MODELS = { vae: 'vae', beta: 'beta_vae', mssim: 'mssim_vae', cvae: 'cvae', joint: 'joint_vae', vaegan: 'vae_gan' } as const;
type ModelKey = keyof typeof MODELS;
const POLL_MS = 200;
const WORKER_ENTRY = 'dist-worker.ts';

interface StepRecord {
  kind: 'step';
  step: number;
  images_per_s: number;
  step_ms: number;
  allreduce_ms: number;
  allreduce_wait_ms: number;
  allreduce_pause_ms?: number;
  allreduce_in_backward_ms?: number;
  peak_tensor_mb?: number;
}

interface RunResult {
  records: StepRecord[];
  /** Peak RSS of each training process, in MiB, in the order they were first seen. */
  peakRssMb: number[];
  /** Trainable parameters, from the trainer's `model: <name>, N parameters` line. */
  parameters: number | null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Direct children of every pid, from /proc/<pid>/stat (field 4 is the parent). */
function childrenByParent(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      map.set(parent, [...(map.get(parent) ?? []), Number(entry)]);
    } catch {
      // The process exited between readdir and read.
    }
  }
  return map;
}

function descendants(root: number): number[] {
  const tree = childrenByParent();
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(tree.get(pid) ?? []));
  }
  return out;
}

/** VmHWM in MiB, or null once the process is gone. */
function peakRssMb(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function isWorkerProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(WORKER_ENTRY);
  } catch {
    return false;
  }
}

/** Runs medvae-dist to completion (one agent, or one per namespace of `net`), polling the peak RSS of the process(es) that train. */
async function runDist(
  workers: number,
  sets: string[],
  maxSteps: number,
  outDir: string,
  overlap: boolean,
  net?: TestNet,
): Promise<RunResult> {
  const args = [
    join(ROOT, 'bin', 'medvae-dist.js'),
    ...(overlap ? [] : ['--no-overlap']),
    ...(o.bucketMb === undefined ? [] : ['--bucket-mb', o.bucketMb]),
    '--cpu-workers',
    String(workers),
    '--config',
    join(ROOT, 'configs', 'vae_retinamnist.yaml'),
    '--max-steps',
    String(maxSteps),
    '--out',
    outDir,
    '--metrics-port',
    '0',
    '--log-format',
    'plain',
    ...sets.flatMap((s) => ['--set', s]),
  ];
  const nnodes = net?.hosts.length ?? 1;
  const nodeArgs = (node: number): string[] =>
    net ? ['--nnodes', String(nnodes), '--node-rank', String(node), '--master-addr', net.hosts[0]!.addr, '--master-port', '29500'] : [];
  const children = Array.from({ length: nnodes }, (_, node) =>
    net
      ? spawn(net.exec(node)[0]!, [...net.exec(node).slice(1), process.execPath, ...args, ...nodeArgs(node)], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, MEDVAE_DIST_TOKEN: 'bench-dist' },
        })
      : spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let output = '';
  for (const child of children) {
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  }
  const peaks = new Map<number, number>();
  const poll = () => {
    // One worker on one node trains in medvae-dist itself; otherwise in forked dist-worker processes.
    const trainers = workers === 1 && !net ? [children[0]!.pid!] : children.flatMap((c) => descendants(c.pid!).filter(isWorkerProcess));
    for (const pid of trainers) {
      const mb = peakRssMb(pid);
      if (mb !== null) peaks.set(pid, Math.max(peaks.get(pid) ?? 0, mb));
    }
  };
  const timer = setInterval(poll, POLL_MS);
  const codes = await Promise.all(children.map((child) => new Promise<number | null>((done) => child.once('exit', done))));
  clearInterval(timer);
  if (codes.some((code) => code !== 0))
    throw new Error(
      `medvae-dist --cpu-workers ${workers} (${nnodes} node(s)) exited with codes ${codes.join(', ')}:\n${output.slice(-4000)}`,
    );
  if (peaks.size !== workers * nnodes)
    throw new Error(`saw ${peaks.size} training process(es) for ${workers * nnodes} worker(s); the run may have been too short to poll`);
  const lines = readFileSync(join(outDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const records = lines.map((l) => JSON.parse(l) as { kind: string }).filter((r): r is StepRecord => r.kind === 'step');
  const parameters = /model: \S+, ([\d,]+) parameters/.exec(output)?.[1];
  return { records, peakRssMb: [...peaks.values()], parameters: parameters === undefined ? null : Number(parameters.replaceAll(',', '')) };
}

const program = new Command()
  .option('--model <name>', `one of ${Object.keys(MODELS).join('|')}`, 'vae')
  .option('--size <px>', 'model.image_size', '64')
  .option('--batch <n>', 'global batch (train.batch_size)', '64')
  .option('--micro <n>', 'train.micro_batch (default: the per-worker batch)')
  .option('--workers <list>', 'worker counts, comma separated', '1,2')
  .option('--steps <n>', 'timed steps after the warm-up', '10')
  .option('--warmup <n>', 'steps dropped before timing (JIT, allocator, first all-reduce)', '2')
  .option(
    '--set <key=value>',
    'any further config override, e.g. train.lr=0.0005 (repeatable)',
    (v: string, all: string[]) => [...all, v],
    [] as string[],
  )
  .option('--nnodes <n>', 'nodes, each a network namespace running one agent of --workers workers (needs root and iproute2)', '1')
  .option('--bucket-mb <MiB>', "medvae-dist's gradient bucket size (its default when absent)")
  .option('--overlap <modes>', "on (buckets during the backward pass), off (after it), or both: 'on,off'", 'on')
  .option('--link-rate <rate>', "tbf rate of every namespace's link, as tc writes it", '1gbit')
  .option(
    '--ceiling',
    'instead: w independent single-process bench:step runs at batch B/w side by side (no collective): what w processes on this machine can do at best',
  )
  .parse();
const o = program.opts<{
  model: string;
  size: string;
  batch: string;
  micro?: string;
  workers: string;
  steps: string;
  warmup: string;
  set: string[];
  ceiling?: boolean;
  nnodes: string;
  linkRate: string;
  overlap: string;
  bucketMb?: string;
}>();
const int = (flag: string, value: string, min: number): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) program.error(`${flag} must be an integer >= ${min}, got '${value}'`);
  return n;
};
if (!(o.model in MODELS)) program.error(`--model must be one of ${Object.keys(MODELS).join('|')}, got '${o.model}'`);
const modelName = MODELS[o.model as ModelKey];
const size = int('--size', o.size, 4);
const batch = int('--batch', o.batch, 1);
const steps = int('--steps', o.steps, 1);
const warmup = int('--warmup', o.warmup, 0);
const workerCounts = o.workers.split(',').map((w) => int('--workers', w, 1));
const nnodes = int('--nnodes', o.nnodes, 1);
const overlapModes = o.overlap.split(',').map((mode) => {
  if (mode !== 'on' && mode !== 'off') program.error(`--overlap takes on, off or on,off; got '${o.overlap}'`);
  return mode === 'on';
});
if (nnodes > 1) {
  const why = netnsSkipReason();
  if (why !== null) program.error(`--nnodes ${nnodes} runs the nodes in network namespaces, which ${why}`);
}

/** images/s of one bench/step.ts process (its JSON line). */
async function stepBench(perWorkerBatch: number): Promise<number> {
  const args = [
    '--import',
    'tsx',
    join(ROOT, 'bench', 'step.ts'),
    '--model',
    o.model,
    '--size',
    String(size),
    '--batch',
    String(perWorkerBatch),
    '--steps',
    String(steps),
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  const line = output.split('\n').find((l) => l.startsWith('{'));
  if (code !== 0 || line === undefined) throw new Error(`bench/step.ts exited with code ${code}:\n${output.slice(-4000)}`);
  return (JSON.parse(line) as { images_per_s: number }).images_per_s;
}

if (o.ceiling) {
  for (const workers of workerCounts) {
    if (batch % workers !== 0) program.error(`--batch ${batch} does not split evenly over ${workers} workers`);
    const rates = await Promise.all(Array.from({ length: workers }, () => stepBench(batch / workers)));
    console.log(
      JSON.stringify({
        ceiling: true,
        model: o.model,
        image_size: size,
        global_batch: batch,
        workers,
        per_process_batch: batch / workers,
        images_per_s: Number(rates.reduce((a, b) => a + b, 0).toFixed(2)),
        images_per_s_per_process: rates,
      }),
    );
  }
  process.exit(0);
}

if (nnodes > 1) sweepStale();
const net = nnodes > 1 ? createTestNet(nnodes, o.linkRate) : undefined;
process.once('exit', () => net?.destroy());
for (const perNode of workerCounts) {
  for (const overlap of overlapModes) {
    const workers = perNode * nnodes;
    if (batch % workers !== 0) program.error(`--batch ${batch} does not split evenly over ${workers} workers`);
    const micro = o.micro === undefined ? batch / workers : int('--micro', o.micro, 1);
    const sets = [
      `model.name=${modelName}`,
      `model.image_size=${size}`,
      `train.batch_size=${batch}`,
      `train.micro_batch=${micro}`,
      ...o.set,
    ];
    const outDir = mkdtempSync(join(tmpdir(), 'medvae-bench-dist-'));
    try {
      const { records, peakRssMb: peaks, parameters } = await runDist(perNode, sets, warmup + steps, outDir, overlap, net);
      const timed = records.filter((r) => r.step > warmup);
      if (timed.length === 0) throw new Error(`no step records after the ${warmup} warm-up steps in ${join(outDir, 'metrics.jsonl')}`);
      const stepMs = median(timed.map((r) => r.step_ms));
      const allReduceMs = median(timed.map((r) => r.allreduce_ms));
      const transferMs = median(timed.map((r) => r.allreduce_ms - r.allreduce_wait_ms));
      const inBackwardMs = median(timed.map((r) => r.allreduce_in_backward_ms ?? 0));
      const exposedMs = median(timed.map((r) => r.allreduce_ms - r.allreduce_wait_ms + (r.allreduce_in_backward_ms ?? 0)));
      const pauseMs = median(timed.map((r) => r.allreduce_pause_ms ?? 0));
      console.log(
        JSON.stringify({
          model: o.model,
          image_size: size,
          global_batch: batch,
          micro_batch: micro,
          workers,
          steps: timed.length,
          // What each all-reduce moves: float32 gradients of every parameter.
          gradient_mb: parameters === null ? null : Number(((parameters * 4) / 2 ** 20).toFixed(1)),
          images_per_s: Number(median(timed.map((r) => r.images_per_s)).toFixed(2)),
          step_ms_median: Number(stepMs.toFixed(1)),
          allreduce_ms_median: Number(allReduceMs.toFixed(2)),
          comm_fraction: Number((allReduceMs / stepMs).toFixed(4)),
          allreduce_wait_ms_median: Number(median(timed.map((r) => r.allreduce_wait_ms)).toFixed(2)),
          transfer_fraction: Number((transferMs / stepMs).toFixed(4)),
          peak_rss_mb_per_worker: peaks.map((mb) => Math.round(mb)),
          peak_tensor_mb_rank0: Number(Math.max(0, ...records.map((r) => r.peak_tensor_mb ?? 0)).toFixed(1)),
          nnodes,
          link_rate: net ? o.linkRate : null,
          overlap,
          in_backward_ms_median: Number(inBackwardMs.toFixed(2)),
          exposed_comm_ms_median: Number(exposedMs.toFixed(2)),
          exposed_comm_fraction: Number((exposedMs / stepMs).toFixed(4)),
          pause_ms_median: Number(pauseMs.toFixed(2)),
          exposed_with_pauses_fraction: Number(((transferMs + pauseMs) / stepMs).toFixed(4)),
        }),
      );
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }
}
