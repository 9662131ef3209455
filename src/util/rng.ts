// Deterministic randomness. Every random draw of a run is a pure function of (seed, a few integer
// keys): the data order of epoch e, the noise of micro-batch m of step s, a weight's initial value.
// No generator state has to be saved for exact resume, and workers agree without talking.
import { tf } from './tf.ts';

/** 32-bit mix (Murmur3's finaliser), the building block of the hashes below. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash a seed and integer keys to one unsigned 32-bit value. */
export function hashKeys(seed: number, ...keys: number[]): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  for (const k of keys) h = mix32(h ^ mix32((k >>> 0) + 0x7f4a7c15) ^ Math.floor(k / 0x100000000));
  return h;
}

/** A small fast generator (mulberry32) for JS-side draws: permutations, augmentations. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Randomness a step needs, drawn by the trainer from its seeded generator so that a step is a pure
 * function of (weights, batch, noise): this is what makes resume exact and workers agree.
 * `normal(shape)` returns a fresh standard-normal tensor; `uniform(shape)` one in [0, 1).
 */
export interface StepNoise {
  normal(shape: number[]): tf.Tensor;
  uniform(shape: number[]): tf.Tensor;
}

/**
 * Noise for one micro-batch: the k-th call returns the same tensor for the same (seed, keys, k),
 * whatever backend, process or worker count.
 */
export function stepNoise(seed: number, ...keys: number[]): StepNoise {
  let draw = 0;
  const next = (): number => hashKeys(seed, ...keys, draw++);
  return {
    normal: (shape) => tf.randomNormal(shape, 0, 1, 'float32', next()),
    uniform: (shape) => tf.randomUniform(shape, 0, 1, 'float32', next()),
  };
}

/** First key of every hash, so that the streams of one seed never collide. */
export const Stream = { init: 1, dataOrder: 2, augment: 3, noise: 4, sample: 5, eval: 6, corrupt: 7 } as const;
