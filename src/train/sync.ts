// The one place where the training step meets the collective: gradients, the step's loss terms
// and BatchNorm moving statistics go out as one list of buffers and come back averaged over workers.
// With one worker nothing is copied: the collective is the identity.
import * as tf from '@tensorflow/tfjs';
import { readInto, tensorsFrom, totalSize } from '../backend/tensor-io.ts';
import type { Collective } from '../dist/collective.ts';

/** What the training loop needs of a collective (src/dist implements it over TCP). */
export type StepCollective = Pick<Collective, 'rank' | 'worldSize' | 'allReduceMean' | 'broadcast' | 'stats'>;

/** A named weight that is not trained by gradients but must agree across replicas (BN moving stats). */
export interface SharedState {
  name: string;
  variable: tf.Variable;
}

/** The tensors' values end to end in a fresh array (for the occasional broadcast and checksum). */
function readFlat(tensors: readonly tf.Tensor[]): Float32Array {
  const values = new Float32Array(totalSize(tensors));
  readInto(tensors, values);
  return values;
}

/**
 * Each collective's all-reduce buffer, reused from step to step while its size stays the same: a
 * fresh gradient-sized array every step costs garbage collections (see src/backend/tensor-io.ts).
 */
const stepBuffers = new WeakMap<StepCollective, Float32Array>();

function stepBuffer(collective: StepCollective, size: number): Float32Array {
  let buffer = stepBuffers.get(collective);
  if (buffer?.length !== size) {
    buffer = new Float32Array(size);
    stepBuffers.set(collective, buffer);
  }
  return buffer;
}

/**
 * Averages, over all workers and in place: per-group gradients (replaced by new tensors), the loss
 * terms and the shared state variables; and agrees on whether to stop after this step. Names are
 * sorted, so every worker lays the buffers out identically. Returns the bytes reduced (0 with one
 * worker), the part of the all-reduce spent waiting for a slower peer, and the stop decision.
 */
export async function averageAcrossWorkers(
  collective: StepCollective,
  grads: Record<string, tf.NamedTensorMap>,
  terms: Record<string, number>,
  shared: SharedState[],
  stopRequested: boolean,
): Promise<{ bytes: number; waitMs: number; stop: boolean }> {
  if (collective.worldSize === 1) return { bytes: 0, waitMs: 0, stop: stopRequested };
  const slots: { group: string; name: string }[] = [];
  for (const group of Object.keys(grads).sort()) {
    for (const name of Object.keys(grads[group]!).sort()) slots.push({ group, name });
  }
  const termNames = Object.keys(terms).sort();
  const tensors = [...slots.map(({ group, name }) => grads[group]![name]!), ...shared.map((s) => s.variable)];
  const values = stepBuffer(collective, totalSize(tensors));
  readInto(tensors, values);
  // The last slot votes on stopping: any worker asked to stop (Ctrl-C) makes all stop after this
  // same step, so none is left waiting in an all-reduce its peers never join.
  const scalars = Float32Array.from([...termNames.map((n) => terms[n]!), stopRequested ? 1 : 0]);
  await collective.allReduceMean([values, scalars]);
  const averaged = tensorsFrom(values, tensors.map((t) => t.shape));
  slots.forEach(({ group, name }, i) => {
    grads[group]![name]!.dispose();
    grads[group]![name] = averaged[i]!;
  });
  shared.forEach((s, i) => {
    const value = averaged[slots.length + i]!;
    s.variable.assign(value);
    value.dispose();
  });
  termNames.forEach((n, i) => { terms[n] = scalars[i]!; });
  return { bytes: values.byteLength + scalars.byteLength, waitMs: collective.stats().lastAllReduceWaitMs, stop: scalars[termNames.length]! > 0 };
}

/** Makes every worker start from rank 0's weights and shared state. */
export async function broadcastWeights(collective: StepCollective, variables: tf.Variable[]): Promise<void> {
  if (collective.worldSize === 1) return;
  const values = readFlat(variables);
  await collective.broadcast([values], 0);
  tensorsFrom(values, variables.map((v) => v.shape)).forEach((value, i) => {
    variables[i]!.assign(value);
    value.dispose();
  });
}

/** A 32-bit FNV-1a-style hash, word by word, over the exact bits of every variable: equal on all workers unless they diverged. */
export function weightsChecksum(variables: tf.Variable[]): number {
  const values = readFlat(variables);
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) {
    h ^= words[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class ReplicaDivergenceError extends Error {
  override name = 'ReplicaDivergenceError';
}

/**
 * Compares the weights checksum of every worker with rank 0's; throws on every worker when any
 * differs. The checksum travels as two 16-bit halves so float32 carries it exactly.
 */
export async function checkReplicasAgree(collective: StepCollective, variables: tf.Variable[], step: number): Promise<void> {
  if (collective.worldSize === 1) return;
  const mine = weightsChecksum(variables);
  const root = new Float32Array([mine >>> 16, mine & 0xffff]);
  await collective.broadcast([root], 0);
  const differs = new Float32Array([root[0] === mine >>> 16 && root[1] === (mine & 0xffff) ? 0 : 1]);
  await collective.allReduceMean([differs]);
  if (differs[0]! > 0) {
    throw new ReplicaDivergenceError(`replicas diverged at step ${step}: the weights of at least one worker differ from rank 0's (checksum ${mine.toString(16)} on rank ${collective.rank}); stopping rather than training inconsistent copies`);
  }
}
