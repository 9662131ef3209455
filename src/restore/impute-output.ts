// What `medvae impute` writes. A grid: one column per image (the first 16), rows original, masked
// (missing pixels magenta, or black for grey images), imputed (mean of the imputations) and their
// per-pixel spread (standard deviation, mean over channels, white = the largest in the grid). Or
// an npz in the MedMNIST layout: `<split>_images` the imputed images (uint8, N x S x S [x 3]),
// `<split>_labels`, `<split>_masks` (N x S x S, 1 = missing: a valid --mask file),
// `<split>_originals`, and `<split>_imputations` (N x K x S x S [x 3]) when K > 1 chains ran.
import { writeNpz, type NpyInput } from '../data/npz-writer.ts';
import { denormalize, writeGrid } from '../train/images.ts';

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

const GRID_COLUMNS = 16;

export async function writeImputationGrid(path: string, set: ImputedSet): Promise<void> {
  const { size, channels } = set;
  const cols = Math.min(set.n, GRID_COLUMNS);
  const per = size * size * channels;
  const rows = new Float32Array(4 * cols * per);
  let maxSpread = 0;
  for (let i = 0; i < cols * per; i++) maxSpread = Math.max(maxSpread, set.spread[i]!);
  for (let k = 0; k < cols; k++) {
    const base = k * per;
    rows.set(set.images.subarray(base, base + per), k * per);
    rows.set(set.mean.subarray(base, base + per), (2 * cols + k) * per);
    for (let p = 0; p < size * size; p++) {
      const missing = set.masks[k * size * size + p] === 1;
      let spread = 0;
      for (let c = 0; c < channels; c++) spread += set.spread[base + p * channels + c]! / channels;
      for (let c = 0; c < channels; c++) {
        const v = set.images[base + p * channels + c]!;
        rows[(cols + k) * per + p * channels + c] = missing ? (channels === 3 ? (c === 1 ? -1 : 1) : -1) : v;
        rows[(3 * cols + k) * per + p * channels + c] = maxSpread > 0 ? (2 * spread) / maxSpread - 1 : -1;
      }
    }
  }
  await writeGrid(path, { data: rows, n: 4 * cols, size, channels }, { cols });
}

const toBytes = (values: Float32Array): Uint8Array => Uint8Array.from(values, denormalize);

export function writeImputationNpz(path: string, split: string, set: ImputedSet & { classes: (number | null)[] }): void {
  const { n, size, channels } = set;
  const imageShape = channels === 1 ? [n, size, size] : [n, size, size, 3];
  const labelShape = [n, 1];
  const empty = (shape: number[]): NpyInput => ({ dtype: '|u1', shape: [0, ...shape.slice(1)], data: new Uint8Array(0) });
  const arrays: Record<string, NpyInput> = {};
  // The other MedMNIST splits, empty, so every reader of the layout opens the file.
  for (const other of ['train', 'val', 'test'].filter((s) => s !== split)) {
    arrays[`${other}_images`] = empty(imageShape);
    arrays[`${other}_labels`] = empty(labelShape);
  }
  arrays[`${split}_images`] = { dtype: '|u1', shape: imageShape, data: toBytes(set.mean) };
  arrays[`${split}_labels`] = { dtype: '|u1', shape: labelShape, data: Uint8Array.from(set.classes, (c) => c ?? 0) };
  arrays[`${split}_masks`] = { dtype: '|u1', shape: [n, size, size], data: set.masks };
  arrays[`${split}_originals`] = { dtype: '|u1', shape: imageShape, data: toBytes(set.images) };
  if (set.samples.length > 1) {
    const per = size * size * channels;
    const stacked = new Uint8Array(n * set.samples.length * per);
    for (let i = 0; i < n; i++)
      set.samples.forEach((s, k) => stacked.set(toBytes(s.subarray(i * per, (i + 1) * per)), (i * set.samples.length + k) * per));
    arrays[`${split}_imputations`] = { dtype: '|u1', shape: [n, set.samples.length, ...imageShape.slice(1)], data: stacked };
  }
  writeNpz(path, arrays);
}
