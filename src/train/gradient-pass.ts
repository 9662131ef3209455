// One step's forward and backward passes over this worker's share of the batch, micro-batch by
// micro-batch: gradients summed with weights n_i / n, and the loss terms and objectives read back
// once, asynchronously (a GPU backend has no synchronous read), when all micro-batches are done.
import { tf } from '../util/tf.ts';
import type { Batch } from '../data/types.ts';
import type { ModelBatch, VaeModel } from '../models/base.ts';
import { translateBackendError } from '../backend/index.ts';
import type { NoiseSpec } from '../util/noise.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { corruptRows, type Corruption } from './corrupt.ts';
import { gradientWalk } from './step.ts';
import type { StepSync } from './sync.ts';

export interface GradientPassInput {
  model: VaeModel;
  sync: StepSync;
  batch: Batch;
  /** This worker's rank: with the micro-batch index, where its images sit in the global batch. */
  rank: number;
  /** Images per forward pass. */
  micro: number;
  step: number;
  seed: number;
  /** Global batch / dataset size (PyTorch-VAE's M_N). */
  minibatchFraction: number;
  /** The denoising criterion's noise on the encoder's input (train.corrupt); undefined: none. */
  corrupt?: NoiseSpec;
}

export interface GradientPass {
  /** Per param group, the weighted sum of the micro-batches' gradients (the caller disposes them). */
  grads: Record<string, tf.NamedTensorMap>;
  /** Loss terms and (as `objective/<group>`) each group's objective, weighted means over the micro-batches. */
  scalars: Record<string, number>;
  /** The most tensor memory held between micro-batches: weights, optimizer state and gradients. */
  tensorBytes: number;
}

/** Prefix of a group's objective among a step's scalars (term names never contain '/'). */
const OBJECTIVE = 'objective/';

/** The scalars a step reports, split back into logging terms and per-group objectives. */
export function splitScalars(scalars: Record<string, number>): { terms: Record<string, number>; objectives: Record<string, number> } {
  const terms: Record<string, number> = {};
  const objectives: Record<string, number> = {};
  for (const [name, value] of Object.entries(scalars)) {
    if (name.startsWith(OBJECTIVE)) objectives[name.slice(OBJECTIVE.length)] = value;
    else terms[name] = value;
  }
  return { terms, objectives };
}

/** Rows [start, end) of this rank's batch as tensors, with the encoder's corrupted copy under the denoising criterion. */
function batchTensors(batch: Batch, rank: number, start: number, end: number, corruption: Corruption | undefined): ModelBatch {
  const n = end - start;
  const px = batch.size * batch.size * batch.channels;
  const shape: [number, number, number, number] = [n, batch.size, batch.size, batch.channels];
  const images = tf.tensor4d(batch.images.subarray(start * px, end * px), shape);
  const inputs = corruption ? tf.tensor4d(corruptRows(batch, rank, start, end, corruption), shape) : undefined;
  if (batch.labelWidth === 0) return { images, inputs };
  const labels = tf.tensor2d(batch.labels.subarray(start * batch.labelWidth, end * batch.labelWidth), [n, batch.labelWidth]);
  return { images, inputs, labels };
}

/** A micro-batch's scalars, stacked on the device in a fixed order until the step reads them all. */
function stackScalars(terms: Record<string, tf.Scalar>, objectives: Record<string, tf.Scalar>): { names: string[]; values: tf.Tensor1D } {
  const named: [string, tf.Scalar][] = [
    ...Object.entries(terms),
    ...Object.entries(objectives).map(([group, value]): [string, tf.Scalar] => [`${OBJECTIVE}${group}`, value]),
  ];
  named.sort(([a], [b]) => a.localeCompare(b));
  return { names: named.map(([name]) => name), values: tf.tidy(() => tf.stack(named.map(([, value]) => value)) as tf.Tensor1D) };
}

/** Sums weight x value over the micro-batches' stacked scalars in one read; disposes them. */
async function readScalars(parts: readonly { names: string[]; values: tf.Tensor1D; weight: number }[]): Promise<Record<string, number>> {
  const names = parts[0]!.names;
  const differing = parts.find((p) => p.names.join() !== names.join());
  if (differing) throw new Error(`micro-batches report different loss terms: ${differing.names.join(', ')} vs ${names.join(', ')}`);
  const all = tf.tidy(() => tf.concat(parts.map((p) => p.values)));
  let values: Float32Array;
  try {
    values = (await all.data()) as Float32Array;
  } finally {
    tf.dispose([all, ...parts.map((p) => p.values)]);
  }
  const sums: Record<string, number> = {};
  parts.forEach(({ weight }, i) => names.forEach((name, k) => (sums[name] = (sums[name] ?? 0) + weight * values[i * names.length + k]!)));
  return sums;
}

export async function gradientPass({
  model,
  sync,
  batch,
  rank,
  micro,
  step,
  seed,
  minibatchFraction,
  corrupt,
}: GradientPassInput): Promise<GradientPass> {
  const grads: Record<string, tf.NamedTensorMap> = {};
  const parts: { names: string[]; values: tf.Tensor1D; weight: number }[] = [];
  const micros = Math.ceil(batch.n / micro);
  let tensorBytes = 0;
  for (let i = 0; i < micros; i++) {
    const start = i * micro;
    const end = Math.min(batch.n, start + micro);
    const weight = (end - start) / batch.n;
    const inputs = batchTensors(batch, rank, start, end, corrupt && { spec: corrupt, seed, step });
    // Keyed by the micro-batch's place in the global batch: independent of the worker count.
    const noise = stepNoise(seed, Stream.noise, step, rank * micros + i);
    const ctx = { step, minibatchFraction, noise, training: true };
    try {
      const { terms, objectives } = await sync.backward(
        (onGradient) => gradientWalk(model, inputs, ctx, onGradient),
        grads,
        weight,
        i === micros - 1,
      );
      parts.push({ ...stackScalars(terms, objectives), weight });
      tf.dispose([
        inputs.images,
        inputs.inputs,
        inputs.labels,
        ...new Set([...Object.values(terms), ...Object.values(objectives)]),
      ] as tf.TensorContainer);
    } catch (e) {
      const error = translateBackendError(e, `training step ${step + 1} (micro-batch of ${end - start} at ${batch.size}x${batch.size})`);
      try {
        tf.dispose([inputs.images, inputs.inputs, inputs.labels, ...parts.map((p) => p.values), grads] as tf.TensorContainer);
      } catch {
        // A backend that failed mid-step may not free memory any more; its error is the one to report.
      }
      throw error;
    }
    // Activations are freed by now; weights, optimizer moments and gradients are what stays.
    tensorBytes = Math.max(tensorBytes, tf.memory().numBytes);
  }
  return { grads, scalars: await readScalars(parts), tensorBytes };
}
