// The denoising criterion's corrupted inputs (train.corrupt; Im et al. 2017): util/noise.ts's noise
// on each training image, drawn from a stream keyed by (seed, step, the image's place in the global
// batch), so a step's corruption is the same whatever the worker count or micro-batch size, and a
// resumed run draws what the uninterrupted one drew.
import type { Batch } from '../data/types.ts';
import { noisyImages, type NoiseSpec } from '../util/noise.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';

export interface Corruption {
  spec: NoiseSpec;
  seed: number;
  step: number;
}

/**
 * Corrupted copies of rows [start, end) of `rank`'s share of the global batch; every rank's share
 * has `batch.n` images (the loader's equal shards), so row r sits at `rank * batch.n + r` globally.
 */
export function corruptRows(batch: Batch, rank: number, start: number, end: number, corruption: Corruption): Float32Array {
  const px = batch.size * batch.size * batch.channels;
  const first = rank * batch.n + start;
  return noisyImages(batch.images.subarray(start * px, end * px), end - start, batch.channels, corruption.spec, (k) =>
    mulberry32(hashKeys(corruption.seed, Stream.corrupt, corruption.step, first + k)),
  );
}
