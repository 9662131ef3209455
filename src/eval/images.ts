// Images in memory for evaluation: a few hundred to a few thousand at model resolution, as the
// model sees them (NHWC float32 in [-1, 1]) with one-/multi-hot label rows.
import type { DatasetSplit, LabelKind } from '../data/types.ts';
import { transformSample, type ResizeMode, type SampleTransform } from '../data/transforms.ts';

export interface LabelledImages {
  /** n x size x size x channels, in [-1, 1]. */
  images: Float32Array;
  /** n x labelWidth one-/multi-hot rows (empty when labelWidth is 0). */
  labels: Float32Array;
  n: number;
  size: number;
  channels: 1 | 3;
  labelWidth: number;
  labelKind: LabelKind;
}

export class EvalDataError extends Error {
  override name = 'EvalDataError';
}

/** Label rows of a split as the model takes them: class index -> one-hot, bitmask row -> multi-hot. */
export function labelRows(raw: readonly Uint8Array[], kind: LabelKind, width: number, description: string): Float32Array {
  const rows = new Float32Array(raw.length * width);
  if (kind === 'none' || width === 0) return rows;
  raw.forEach((label, i) => {
    if (kind === 'class') {
      const c = label[0];
      if (c === undefined || c >= width) throw new EvalDataError(`${description}: label ${c} of sample ${i} is outside 0..${width - 1}`);
      rows[i * width + c] = 1;
    } else {
      if (label.length !== width) throw new EvalDataError(`${description}: multi-label row ${i} has ${label.length} entries, expected ${width}`);
      for (let j = 0; j < width; j++) rows[i * width + j] = label[j] ? 1 : 0;
    }
  });
  return rows;
}

/** The subset `indices` of a LabelledImages. */
export function subset(data: LabelledImages, indices: readonly number[]): LabelledImages {
  const per = data.size * data.size * data.channels;
  const images = new Float32Array(indices.length * per);
  const labels = new Float32Array(indices.length * data.labelWidth);
  indices.forEach((idx, k) => {
    images.set(data.images.subarray(idx * per, (idx + 1) * per), k * per);
    labels.set(data.labels.subarray(idx * data.labelWidth, (idx + 1) * data.labelWidth), k * data.labelWidth);
  });
  return { ...data, images, labels, n: indices.length };
}

/** Reads `indices` of `split` through the data layer's crop/resize/normalise chain, without augmentation. */
export async function readLabelledImages(
  split: DatasetSplit,
  indices: readonly number[],
  size: number,
  channels: 1 | 3,
  resizeMode: ResizeMode,
): Promise<LabelledImages> {
  const allLabels = await split.labels();
  const chosen = indices.map((i) => allLabels[i] ?? new Uint8Array(0));
  const per = size * size * channels;
  const images = new Float32Array(indices.length * per);
  const transform: SampleTransform = { size, channels, resize: resizeMode, augment: { flip: false, rot90: false }, seed: 0 };
  const chunk = 256;
  for (let start = 0; start < indices.length; start += chunk) {
    const slice = indices.slice(start, start + chunk);
    const raw = await split.read(slice);
    raw.forEach((image, k) => transformSample(image, transform, 0, slice[k], images, (start + k) * per));
  }
  return {
    images,
    labels: labelRows(chosen, split.labelKind, split.labelWidth, split.description),
    n: indices.length,
    size,
    channels,
    labelWidth: split.labelWidth,
    labelKind: split.labelKind,
  };
}
