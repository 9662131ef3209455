// All-reduce bandwidth over loopback between real worker processes.
//   node --import tsx bench/allreduce.ts --mb 16,64,256 --workers 2 [--iters 5] [--bucket-mb 4] [--chunk-kb 512] [--transport auto|unix|tcp]
// MEDVAE_DIST_TLS=1 (with MEDVAE_DIST_TOKEN) encrypts the TCP links.
// Prints one JSON line per size: {"mb","workers","transport","tls","ms_median","bus_gb_per_s"}, where bus bandwidth is
// NCCL's 2(w-1)/w * bytes / time, comparable across world sizes. An iteration's time is the slowest
// rank's; ranks start each iteration together after a barrier.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { listenForRing, type RingTransport } from '../src/collective/ring.ts';
import { resolveTls } from '../src/collective/tls-link.ts';

type ToWorker = { kind: 'peers'; peers: { host: string; port: number }[] };
type FromWorker = { kind: 'port'; port: number } | { kind: 'times'; ms: number[] } | { kind: 'error'; message: string };

const MIB = 1024 * 1024;

interface RingShape {
  bucketBytes: number;
  chunkBytes: number;
  transport: RingTransport;
}

async function worker(rank: number, worldSize: number, mb: number, iters: number, shape: RingShape): Promise<void> {
  const send = (m: FromWorker) => process.send?.(m);
  const listener = await listenForRing({ rank, worldSize, ...shape, log: (line) => console.error(line) });
  const peers = await new Promise<ToWorker['peers']>((resolve) => {
    process.once('message', (m: ToWorker) => resolve(m.peers));
    send({ kind: 'port', port: listener.port });
  });
  const ring = await listener.connect(peers);
  // Any values do; these are cheap to make and not all equal.
  const grads = new Float32Array((mb * MIB) / 4);
  for (let i = 0; i < grads.length; i++) grads[i] = ((i & 1023) - 512 + rank) / 1024;
  const ms: number[] = [];
  for (let it = -1; it < iters; it++) {
    await ring.barrier();
    const t0 = performance.now();
    await ring.allReduceMean([grads]);
    if (it >= 0) ms.push(performance.now() - t0); // iteration -1 warms up JIT and sockets
  }
  send({ kind: 'times', ms });
  await ring.close();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function measure(mb: number, workers: number, iters: number, shape: RingShape): Promise<number[]> {
  const script = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  try {
    const ports: number[] = new Array<number>(workers);
    const times: number[][] = new Array<number[]>(workers);
    let portsLeft = workers;
    let timesLeft = workers;
    await new Promise<void>((resolve, reject) => {
      for (let rank = 0; rank < workers; rank++) {
        const args = [
          '--worker',
          String(rank),
          '--workers',
          String(workers),
          '--mb',
          String(mb),
          '--iters',
          String(iters),
          '--bucket-mb',
          String(shape.bucketBytes / MIB),
          '--chunk-kb',
          String(shape.chunkBytes / 1024),
          '--transport',
          shape.transport,
        ];
        // Workers inherit this process's node flags (--import tsx, and --cpu-prof when profiling).
        const child = fork(script, args);
        children.push(child);
        child.on('exit', (code) => code !== 0 && reject(new Error(`worker ${rank} exited with code ${code}`)));
        child.on('message', (m: FromWorker) => {
          if (m.kind === 'error') reject(new Error(`worker ${rank}: ${m.message}`));
          if (m.kind === 'port') {
            ports[rank] = m.port;
            if (--portsLeft === 0) {
              const peers = ports.map((port) => ({ host: '127.0.0.1', port }));
              children.forEach((c) => c.send({ kind: 'peers', peers } satisfies ToWorker));
            }
          }
          if (m.kind === 'times') {
            times[rank] = m.ms;
            if (--timesLeft === 0) resolve();
          }
        });
      }
    });
    // An iteration lasts as long as its slowest rank.
    return times[0].map((_, it) => Math.max(...times.map((t) => t[it])));
  } finally {
    // Workers exit by themselves after closing the ring; a stuck one is killed after a grace period.
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill(), 5000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}

const program = new Command()
  .option('--mb <list>', 'buffer sizes in MiB, comma separated', '16,64,256')
  .option('--workers <n>', 'worker processes', '2')
  .option('--iters <n>', 'timed iterations per size', '5')
  .option('--bucket-mb <n>', 'all-reduce bucket size in MiB', '4')
  .option('--chunk-kb <n>', 'frame size in KiB (the pipelining unit)', '512')
  .addOption(new Option('--transport <kind>', 'how ranks connect').choices(['auto', 'unix', 'tcp']).default('auto'))
  .option('--worker <rank>', 'internal: run as this worker rank')
  .parse();
const o = program.opts<{
  mb: string;
  workers: string;
  iters: string;
  bucketMb: string;
  chunkKb: string;
  transport: RingTransport;
  worker?: string;
}>();
const workers = Number(o.workers);
const iters = Number(o.iters);
const bucketBytes = Math.round(Number(o.bucketMb) * MIB);
const chunkBytes = Math.round(Number(o.chunkKb) * 1024);
const sizesMb = o.mb.split(',').map(Number);
if (!Number.isInteger(workers) || workers < 2) program.error(`--workers must be an integer >= 2 (a ring), got ${o.workers}`);
if (!Number.isInteger(iters) || iters < 1) program.error(`--iters must be a positive integer, got ${o.iters}`);
if (!(bucketBytes >= 4 && bucketBytes % 4 === 0)) program.error(`--bucket-mb must give a positive multiple of 4 bytes, got ${o.bucketMb}`);
if (!(chunkBytes >= 4 && chunkBytes % 4 === 0 && chunkBytes <= bucketBytes))
  program.error(`--chunk-kb must give a positive multiple of 4 bytes up to the bucket size, got ${o.chunkKb}`);
const shape: RingShape = { bucketBytes, chunkBytes, transport: o.transport };
if (sizesMb.some((mb) => !(mb > 0) || ((mb * MIB) / 4) % 1 !== 0)) program.error(`--mb must list positive sizes in MiB, got ${o.mb}`);

if (o.worker !== undefined) {
  worker(Number(o.worker), workers, Number(o.mb), iters, shape).catch((e: Error) => {
    process.send?.({ kind: 'error', message: e.message } satisfies FromWorker);
    process.exitCode = 1;
  });
} else {
  for (const mb of sizesMb) {
    const ms = median(await measure(mb, workers, iters, shape));
    const bytes = mb * MIB;
    const busGbPerS = (((2 * (workers - 1)) / workers) * bytes) / (ms / 1000) / 1e9;
    console.log(
      JSON.stringify({
        mb,
        workers,
        transport: o.transport,
        tls: resolveTls(undefined, process.env['MEDVAE_DIST_TOKEN'] ?? ''),
        chunk_kb: chunkBytes / 1024,
        ms_median: Number(ms.toFixed(2)),
        bus_gb_per_s: Number(busGbPerS.toFixed(3)),
      }),
    );
  }
}
