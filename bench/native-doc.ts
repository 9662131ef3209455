// Writes docs/native.md (and the README's speed headline, between its native-speed markers) from the
// JSON that bench/vs-peer.ts writes: native, wasm and the PyTorch peer measured in turn in the
// same minutes, with the commit, date and machine of the run. Nothing in the tables is typed by hand.
//
// Usage: node --import tsx bench/native-doc.ts docs/native-vs-peer.json [docs/native-vs-peer-256.json ...]
// (the JSON of the runs the page shows, kept beside it; the first also gives the README's headline).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceReadmeBlock, ROOT } from './doc-tools.ts';

interface Summary {
  model: string;
  threads: number;
  rounds: number;
  native_images_per_s: number;
  peer_images_per_s: number;
  wasm_images_per_s?: number;
  wasm_vs_peer_median?: number;
  native_vs_peer: number[];
  native_vs_peer_median: number;
}

interface Report {
  commit: string;
  dirty: boolean;
  date: string;
  machine: string;
  image_size: number;
  batch: number;
  micro_batch?: number;
  steps: number;
  fresh_choices?: boolean;
  summaries: Summary[];
  runs: { side: string; model: string; threads: number; peak_rss_mb: number; load_average: number }[];
}

const inputs = process.argv.slice(2);
if (inputs.length === 0) throw new Error('usage: node --import tsx bench/native-doc.ts REPORT.json... (from bench/vs-peer.ts)');
const reports = inputs.map((input) => JSON.parse(readFileSync(input, 'utf8')) as Report);

const MODEL_NAMES: Record<string, string> = { vae: 'Vanilla VAE', mssim: 'MS-SSIM VAE', vaegan: 'VAE-GAN' };
/** The image size from which the issue also bars peak memory (the peer's at the same batch). */
const MEMORY_BAR_SIZE = 256;

const round2 = (x: number): number => Number(x.toFixed(2));
const modelName = (s: Summary): string => MODEL_NAMES[s.model] ?? s.model;

/** The largest peak RSS (MB) of `side`'s runs for a model and thread count. */
function peakRss(report: Report, side: string, s: Summary): number {
  return Math.max(
    ...report.runs.filter((r) => r.side === side && r.model === s.model && r.threads === s.threads).map((r) => r.peak_rss_mb),
  );
}

/** The speed table of one report; `withVerdict` adds the check against the issue's bar (the docs page only). */
function table(report: Report, withVerdict: boolean): string {
  const loads = report.runs.map((r) => r.load_average);
  const stamp = `commit ${report.commit}${report.dirty ? ' (with uncommitted changes)' : ''}, ${report.date.slice(0, 16).replace('T', ' ')} UTC; ${report.machine}; load average ${Math.min(...loads)}–${Math.max(...loads)} while it ran`;
  const micro = report.micro_batch === undefined ? '' : ` (medvae in micro-batches of ${report.micro_batch}, the peer in one pass)`;
  const fresh = report.fresh_choices ? ' Each native run timed its shapes anew, as a first run does, and its peak RSS includes that.' : '';
  const rows = report.summaries.map((s) => {
    const wasm = s.wasm_images_per_s === undefined ? '—' : `${round2(s.wasm_images_per_s)} (${s.wasm_vs_peer_median}×)`;
    return `| ${modelName(s)} | ${s.threads} | **${round2(s.native_images_per_s)}** | ${wasm} | ${round2(s.peer_images_per_s)} | ${peerContended(report, s) ? 'not comparable: the peer was contended' : `**${s.native_vs_peer_median}×** (${s.native_vs_peer.join(', ')})`} | ${peakRss(report, 'native', s)} / ${peakRss(report, 'peer', s)} |`;
  });
  return [
    `${report.image_size}×${report.image_size}, batch ${report.batch}${micro}, images/s (median of ${report.summaries[0]?.rounds ?? 0} rounds, ${report.steps} timed steps each); ${stamp}.${fresh}`,
    '',
    '| model | threads | native | wasm (one core; ratio to the peer) | PyTorch peer | native ÷ peer (each round) | peak RSS MB, native / peer |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    ...(withVerdict ? ['', verdict(report)] : []),
  ].join('\n');
}

/**
 * A row whose peer ran slower on more threads than on one: OpenBLAS's OpenMP threads collapse when
 * another process holds a core, so such a ratio says nothing about the two programs.
 */
function peerContended(report: Report, s: Summary): boolean {
  const single = report.summaries.find((o) => o.model === s.model && o.threads === 1);
  return s.threads > 1 && single !== undefined && s.peer_images_per_s < single.peer_images_per_s;
}

/**
 * The issue's bar, checked on the medians above: native ≥ 1.0× the peer at the same threads (aim
 * 1.3×) and, from MEMORY_BAR_SIZE up, a peak RSS no larger than the peer's.
 */
function verdict(report: Report): string {
  const name = (s: Summary): string => `${modelName(s)} at ${s.threads} thread${s.threads === 1 ? '' : 's'}`;
  const contended = report.summaries.filter((s) => peerContended(report, s));
  const comparable = report.summaries.filter((s) => !peerContended(report, s));
  const met = comparable.filter((s) => s.native_vs_peer_median >= 1);
  const short = comparable.filter((s) => s.native_vs_peer_median < 1);
  const aim = comparable.filter((s) => s.native_vs_peer_median >= 1.3);
  const memory =
    report.image_size >= MEMORY_BAR_SIZE
      ? comparable.map((s) => [s, peakRss(report, 'native', s), peakRss(report, 'peer', s)] as const)
      : [];
  return [
    ...(contended.length
      ? [
          `Not comparable: ${contended.map(name).join(', ')} (the peer ran slower on more threads than on one, another process held a core); measure again on a quiet machine.`,
        ]
      : []),
    `Native ≥ 1.0× the peer (median ratio): met by ${met.length} of ${comparable.length}${met.length ? ` (${met.map(name).join(', ')})` : ''}` +
      `${short.length ? `; not met by ${short.map((s) => `${name(s)}, ${s.native_vs_peer_median}×`).join('; ')}` : ''}.`,
    `At the aim of 1.3×: ${aim.length ? aim.map(name).join(', ') : 'none'}.`,
    ...memory.map(
      ([s, native, peer]) =>
        `Peak RSS no larger than the peer's: ${native <= peer ? 'met' : 'not met'} by ${name(s)} (${native} MB against ${peer} MB).`,
    ),
  ].join(' ');
}

const page = `# Native CPU backend

Generated by \`bench/native-doc.ts\` from \`bench/vs-peer.ts\`'s JSON; do not edit by hand.

\`--backend native\` (and \`auto\`, when onnxruntime-node loads) trains on TF.js's wasm backend with its
heavy kernels replaced: Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter and BatchMatMul run as
small ONNX graphs, built in code and one session per shape, on onnxruntime-node's CPU library
(MLAS), reading and writing the tensors where they lie on the wasm heap. Layers, autodiff, the
element-wise work, checkpoints and this project's SIMD kernels stay as they are. The code is in
\`src/backend/native/\`, one file per kernel.

- **Graphs per shape.** A kernel offers one or more graphs (a Conv between NHWC↔NCHW Transposes;
  onnxruntime's blocked-channel (NCHWc) Conv, read from and written to NHWC directly; an im2col and
  one GEMM in NHWC, no transposes; for the input gradient, ConvTranspose or the sub-pixel phases as
  one GEMM, one blocked conv, or one blocked conv per phase with only its real taps; for the filter
  gradient, one GEMM per filter tap beside the im2col). Each graph's last node writes the caller's
  buffer: its output is declared in that node's own shape. The first call of each shape times them
  and the wasm kernel in turns (three rounds, each running every one once, in a rotated order, so
  that the machine's drift weighs on all alike; the wasm kernel on fresh copies of the weights, as
  training gives it) and keeps the fastest, remembered per machine, thread count, onnxruntime
  version and set of graphs (\`~/.cache/medvae/native-graphs.json\`, or \`MEDVAE_NATIVE_CHOICES\`).
  Runs of several workers are deterministic by default and race nothing (below); one process,
  \`bench:step\` and \`bench:vs-peer\` race unless \`train.deterministic: true\` is asked for.
- **Determinism.** A graph choice changes float rounding, and Adam turns rounding noise into
  learning-rate-sized steps: two workers that picked different graphs for a shape (each timed its
  own), or one process timed at 2 threads and workers at 1, ended 5 steps apart by 0.04–0.2% of a
  tensor's largest value on the 32×32 test model, 55% on a larger one. So a training run keeps its
  choices in its run directory, \`native-plan.json\` (\`src/backend/native/run-plan.ts\`): which graph
  each kernel shape runs, and on how many threads, keyed by kernel, shape and thread count, with the
  onnxruntime version and set of graphs they were made with (another version: one line, and the
  shapes are planned again). The chief writes it at the first step (atomically); every worker, a
  \`--resume\`, and the run carried to another machine read it. With \`train.deterministic\` on
  (\`auto\`, the default, turns it on for several workers) a shape the plan lacks gets a fixed choice, no timing: the first graph that loads
  of \`nchwc\`, \`phase-split\`, \`phase-nchwc\` and \`tap-gemm\` where the kernel offers them (they won
  most races at 2 threads), else the kernel's own first (Conv2D \`conv\`, the input gradient
  \`phase-gemm\` or \`conv-transpose\`, the filter gradient \`im2col-gemm\` or \`conv\`, BatchMatMul \`gemm\`
  or \`matmul\`), never the wasm kernel. onnxruntime's GEMMs split their columns among threads and
  block the sum by the split (a [64, 2048] × [2048, 128] product differs at 2 threads from 1), so
  on several threads each chosen graph is run once on made-up inputs with them and with one, and
  runs on one thread where the bits differ. A deterministic run thus computes the bits of one
  thread whatever its threads: one process accumulating micro-batches of 32 and two workers of 32
  end with the same weights and running statistics, bit for bit
  (\`test/process/native-determinism.test.ts\`). Another CPU may still round differently (MLAS has
  kernels per instruction set). No race makes the first step shorter; later steps can be several
  times slower where a race would have found faster graphs or used every thread, which is why one
  process races by default (\`train.deterministic: false\` races in every run).
- **Slices of the batch.** Where an image-wise input or output of a conv or of its gradients
  exceeds 8 MB, the graphs run over slices of the batch that stay under it (the filter gradient
  sums the slices'), and no im2col buffer exceeds 16 MB. onnxruntime allocates a graph's
  intermediates on each run, and the binding a copy of its output; blocks above glibc's mmap
  threshold (32 MB at most) come from fresh pages of the kernel each time (16,384 page faults for
  a 64 MB output), which cost more than the convolution at two threads, and more on a busy
  machine than on a quiet one. Smaller blocks reuse freed memory, and a 256×256 step holds less
  at once.
- **Threads.** Every core by default; \`--threads N\` / \`train.threads\`. Under \`medvae-dist\` the
  workers on one machine share the cores (workers × threads ≤ cores) unless threads are asked for.
  Idle pool threads sleep (\`allow_spinning\` off) instead of taking the core the wasm work runs on.
- **Same numbers.** Every replaced kernel matches the cpu backend to 1e-4 (relative) on the
  training's shapes, odd sizes and batch 1 (\`test/unit/native-kernels.test.ts\`); a whole step of every
  model matches wasm (\`test/process/native-training.test.ts\`), which also checks bit-exact resume.
- **Optional.** onnxruntime-node is an optional dependency; its install script (which fetches CUDA
  files) is not run, its CPU library ships inside the package. Without it \`auto\` says so in its one
  backend line and uses wasm, and \`--backend native\` is a one-line error saying how to get it.

## Speed beside PyTorch

Measured by \`npm run bench:vs-peer -- --wasm\` (64×64) and \`npm run bench:vs-peer -- --models
vaegan --threads 2 --size 256 --batch 16 --micro-batch 8 --steps 3 --fresh-choices\` (256×256):
\`bench:step --backend native\` and the PyTorch peer (\`../shared/peer/run.sh\`, PyTorch 1.13 on
OpenBLAS) take turns, so each ratio compares runs made in the same minutes on this shared machine,
whose speed drifts by up to 25%. At 256×256 the peer takes the batch of 16 in one pass, and medvae
two micro-batches of 8, as \`medvae train\` does with \`train.micro_batch: 8\` (the step sums
their gradients). Peak RSS is each process's high-water mark (\`ru_maxrss\`) on both sides.

${reports.map((report) => table(report, true)).join('\n\n')}
`;
writeFileSync(join(ROOT, 'docs', 'native.md'), page);

// The README gives one headline: the main job's model at the most threads of the first report.
const [first] = reports as [Report, ...Report[]];
const headline = first.summaries.filter((s) => modelName(s) === 'Vanilla VAE').at(-1) ?? first.summaries[0]!;
if (
  !replaceReadmeBlock('native-speed', [
    `${first.image_size}×${first.image_size} Vanilla VAE, batch ${first.batch}, ${headline.threads} threads: **${round2(headline.native_images_per_s)}** images/s against the PyTorch peer's ${round2(headline.peer_images_per_s)} (**${headline.native_vs_peer_median}×**; commit ${first.commit}); every model and the 256×256 VAE-GAN: [docs/native.md](docs/native.md).`,
  ])
) {
  throw new Error('README.md has no native-speed block');
}
console.error('native-doc: wrote docs/native.md and the README headline');
