// Training-step throughput of one model on one backend, on a fixed random batch:
//   node --import tsx bench/step.ts --model vae --size 64 --batch 64 --backend wasm --steps 5 [--threads N] [--micro-batch M]
//     [--allow-software-gpu]
// prints one JSON line {model, image_size, batch, micro_batch, backend, threads, params, images_per_s, step_ms_median,
// optimizer_ms_median, peak_rss_mb, tensors_leaked}, and on webgpu {adapter, software_adapter}. --threads sets the native
// backend's threads (default: every core). --allow-software-gpu lets --backend webgpu run on a software adapter
// (SwiftShader), which checks the bench itself where there is no GPU.
// --micro-batch computes each step's gradients over micro-batches of at most M images, summed as the trainer sums
// them (train.micro_batch). One warm-up step runs first, untimed. --profile adds, on stderr, where one step's time
// goes, per kernel.
import { parseArgs } from 'node:util';
import { tf } from '../src/util/tf.ts';
import { initBackend } from '../src/backend/index.ts';
import { DEFAULT_CONFIG, type BackendChoice, type ModelName } from '../src/config/schema.ts';
import type { ModelBatch, VaeModel } from '../src/models/base.ts';
import { createModel } from '../src/models/index.ts';
import { stepNoise, Stream } from '../src/util/rng.ts';
import {
  accumulateGradients,
  applyGradients,
  computeGradients,
  createOptimizers,
  disposeGradients,
  type GroupOptimizer,
} from '../src/train/step.ts';

const MODEL_NAMES: Record<string, ModelName> = {
  vae: 'vae',
  beta: 'beta_vae',
  mssim: 'mssim_vae',
  cvae: 'cvae',
  joint: 'joint_vae',
  vaegan: 'vae_gan',
};
const LABEL_WIDTH = 10;

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got '${value}'`);
  return n;
}

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'vae' },
    size: { type: 'string', default: '64' },
    batch: { type: 'string', default: '64' },
    backend: { type: 'string', default: 'wasm' },
    steps: { type: 'string', default: '5' },
    profile: { type: 'boolean', default: false },
    threads: { type: 'string', default: '0' },
    'micro-batch': { type: 'string' },
    'allow-software-gpu': { type: 'boolean', default: false },
  },
});
const name =
  MODEL_NAMES[values.model] ?? (Object.values(MODEL_NAMES).includes(values.model as ModelName) ? (values.model as ModelName) : undefined);
if (name === undefined) throw new Error(`--model must be one of ${Object.keys(MODEL_NAMES).join(', ')}, got '${values.model}'`);
const size = positiveInt(values.size, 'size');
const batchSize = positiveInt(values.batch, 'batch');
const steps = positiveInt(values.steps, 'steps');
const microBatch = Math.min(batchSize, values['micro-batch'] === undefined ? batchSize : positiveInt(values['micro-batch'], 'micro-batch'));
const backend = values.backend as BackendChoice;

const threads = values.threads === '0' ? 0 : positiveInt(values.threads, 'threads');
const info = await initBackend(backend, undefined, { threads, allowSoftwareGpu: values['allow-software-gpu'] });
const config = { ...DEFAULT_CONFIG.model, name, image_size: size };
// The labels' width: the conditional model takes them, the others ignore them.
const model: VaeModel = createModel(config, DEFAULT_CONFIG.train.seed, LABEL_WIDTH);
const optimizers: Record<string, GroupOptimizer> = createOptimizers(model, DEFAULT_CONFIG.train);
const batch: ModelBatch = {
  images: tf.randomUniform([batchSize, size, size, config.in_channels], -1, 1, 'float32', 1) as tf.Tensor4D,
  labels: tf.oneHot(tf.randomUniform([batchSize], 0, LABEL_WIDTH, 'int32', 2) as tf.Tensor1D, LABEL_WIDTH).toFloat() as tf.Tensor2D,
};

/** Milliseconds of each step's optimizer update: a cost that does not shrink with the batch (the backends here run kernels synchronously). */
const optimizerMs: number[] = [];

/** Images [start, end) of the batch (the whole batch itself when that is all of it). */
function slice(start: number, end: number): ModelBatch {
  if (start === 0 && end === batchSize) return batch;
  return tf.tidy(() => ({
    images: batch.images.slice(start, end - start),
    labels: batch.labels?.slice(start, end - start),
  }));
}

async function step(i: number): Promise<void> {
  const grads: Record<string, tf.NamedTensorMap> = {};
  for (let start = 0, m = 0; start < batchSize; start += microBatch, m++) {
    const end = Math.min(batchSize, start + microBatch);
    const part = slice(start, end);
    const ctx = { step: i, minibatchFraction: batchSize / 1080, noise: stepNoise(1, Stream.noise, i, m), training: true };
    const result = computeGradients(model, part, ctx);
    // Reading a term waits for the step's kernels on asynchronous backends (webgpu can only read asynchronously in Node).
    await result.terms['loss']?.data();
    accumulateGradients(grads, result.groups, (end - start) / batchSize);
    disposeGradients(result);
    if (part !== batch) tf.dispose([part.images, part.labels ?? []]);
  }
  const t0 = performance.now();
  applyGradients(optimizers, grads);
  optimizerMs.push(performance.now() - t0);
  tf.dispose(grads as tf.TensorContainer);
}

await step(0);
const tensorsAfterWarmup = tf.memory().numTensors;
const times: number[] = [];
for (let i = 1; i <= steps; i++) {
  const t0 = performance.now();
  await step(i);
  times.push(performance.now() - t0);
}
const tensorsLeaked = tf.memory().numTensors - tensorsAfterWarmup;

if (values.profile) {
  const profile = await tf.profile(async () => {
    await step(steps + 1);
  });
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of profile.kernels) {
    const ms = Number(await k.kernelTimeMs);
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += Number.isFinite(ms) ? ms : 0;
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((a, b) => a + b.ms, 0);
  const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
  for (const [kernel, { ms, calls }] of rows.slice(0, 25)) {
    process.stderr.write(
      `${kernel.padEnd(36)} ${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}% ${String(calls).padStart(5)} calls\n`,
    );
  }
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
}
const stepMs = median(times);
console.log(
  JSON.stringify({
    model: name,
    image_size: size,
    batch: batchSize,
    micro_batch: microBatch,
    backend: info.name,
    threads: info.threads ?? 1,
    params: model.paramCount(),
    images_per_s: Number(((batchSize * 1000) / stepMs).toFixed(2)),
    step_ms_median: Number(stepMs.toFixed(1)),
    // The timed steps only: not the warm-up (first) nor a --profile step (last).
    optimizer_ms_median: Number(median(optimizerMs.slice(1, 1 + steps)).toFixed(1)),
    // The process's high-water mark (getrusage's ru_maxrss, as the PyTorch peer reports it): the
    // warm-up step, and the first call of each native shape timing its graphs, count too.
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    tensors_leaked: tensorsLeaked,
    ...(info.adapter !== undefined ? { adapter: info.adapter.name, software_adapter: info.adapter.software } : {}),
  }),
);
tf.dispose([batch.images, batch.labels ?? []]);
model.dispose();
