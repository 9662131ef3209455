// What `medvae impute` writes, as rows of images and as arrays; `src/cli/image-output.ts` decides
// the form (`--out`: a grid, a folder, an npz). Rows: original, masked (missing pixels magenta, or
// black for grey images), filled (mean of the imputations) and their per-pixel spread (standard
// deviation, mean over channels, white = the largest among the images written). Arrays, for the
// MedMNIST layout: the imputed images (uint8, N x S x S [x 3]) and the members `masks` (N x S x S,
// 1 = missing: a valid --mask file), `originals`, and `imputations` (N x K x S x S [x 3]) when
// K > 1 chains ran.
import type { NpyInput } from '../data/npz-writer.ts';
import { denormalize } from '../run/images.ts';

export interface ImputedSet {
  images: Float32Array;
  masks: Uint8Array;
  mean: Float32Array;
  spread: Float32Array;
  samples: Float32Array[];
  n: number;
  size: number;
  channels: 1 | 3;
}

/** The names of the rows imputationRows returns, in order. */
export const IMPUTATION_ROWS = ['original', 'masked', 'filled', 'spread'] as const;

/** The first `count` images of the set as four rows of images in [-1, 1] (IMPUTATION_ROWS). */
export function imputationRows(set: ImputedSet, count = set.n): Float32Array[] {
  const { size, channels } = set;
  const cols = Math.min(set.n, count);
  const per = size * size * channels;
  const original = set.images.slice(0, cols * per);
  const filled = set.mean.slice(0, cols * per);
  const masked = new Float32Array(cols * per);
  const spreadRow = new Float32Array(cols * per);
  let maxSpread = 0;
  for (let i = 0; i < cols * per; i++) maxSpread = Math.max(maxSpread, set.spread[i]!);
  for (let k = 0; k < cols; k++) {
    const base = k * per;
    for (let p = 0; p < size * size; p++) {
      const missing = set.masks[k * size * size + p] === 1;
      let spread = 0;
      for (let c = 0; c < channels; c++) spread += set.spread[base + p * channels + c]! / channels;
      for (let c = 0; c < channels; c++) {
        const v = set.images[base + p * channels + c]!;
        masked[base + p * channels + c] = missing ? (channels === 3 ? (c === 1 ? -1 : 1) : -1) : v;
        spreadRow[base + p * channels + c] = maxSpread > 0 ? (2 * spread) / maxSpread - 1 : -1;
      }
    }
  }
  return [original, masked, filled, spreadRow];
}

const toBytes = (values: Float32Array): Uint8Array => Uint8Array.from(values, denormalize);

/** The imputed images as uint8 and the other members of the npz (without the split prefix). */
export function imputationArrays(set: ImputedSet): { images: Uint8Array; members: Record<string, NpyInput> } {
  const { n, size, channels } = set;
  const imageShape = channels === 1 ? [n, size, size] : [n, size, size, 3];
  const members: Record<string, NpyInput> = {
    masks: { dtype: '|u1', shape: [n, size, size], data: set.masks },
    originals: { dtype: '|u1', shape: imageShape, data: toBytes(set.images) },
  };
  if (set.samples.length > 1) {
    const per = size * size * channels;
    const stacked = new Uint8Array(n * set.samples.length * per);
    for (let i = 0; i < n; i++)
      set.samples.forEach((s, k) => stacked.set(toBytes(s.subarray(i * per, (i + 1) * per)), (i * set.samples.length + k) * per));
    members['imputations'] = { dtype: '|u1', shape: [n, set.samples.length, ...imageShape.slice(1)], data: stacked };
  }
  return { images: toBytes(set.mean), members };
}
