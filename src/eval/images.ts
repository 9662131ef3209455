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
      if (label.length !== width)
        throw new EvalDataError(`${description}: multi-label row ${i} has ${label.length} entries, expected ${width}`);
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

/** The images of `a` followed by those of `b` (same side, channels and label layout). */
export function concatImages(a: LabelledImages, b: LabelledImages): LabelledImages {
  if (a.size !== b.size || a.channels !== b.channels || a.labelWidth !== b.labelWidth || a.labelKind !== b.labelKind) {
    throw new EvalDataError(
      `cannot join ${a.size}px x ${a.channels}ch (${a.labelKind}, ${a.labelWidth}) and ${b.size}px x ${b.channels}ch (${b.labelKind}, ${b.labelWidth}) images`,
    );
  }
  const images = new Float32Array(a.images.length + b.images.length);
  images.set(a.images);
  images.set(b.images, a.images.length);
  const labels = new Float32Array(a.labels.length + b.labels.length);
  labels.set(a.labels);
  labels.set(b.labels, a.labels.length);
  return { ...a, images, labels, n: a.n + b.n };
}

/** The transform chain of evaluation: the data layer's crop/resize/normalise, no augmentation. */
function evalTransform(size: number, channels: 1 | 3, resizeMode: ResizeMode): SampleTransform {
  return { size, channels, resize: resizeMode, augment: { flip: false, rot90: false }, seed: 0 };
}

/** `indices` of `split` through `transform`, 256 images at a time: (first position, images) per chunk. */
async function* readChunks(
  split: DatasetSplit,
  indices: readonly number[],
  transform: SampleTransform,
): AsyncGenerator<{ start: number; images: Float32Array }> {
  const per = transform.size * transform.size * transform.channels;
  const chunk = 256;
  for (let start = 0; start < indices.length; start += chunk) {
    const slice = indices.slice(start, start + chunk);
    const raw = await split.read(slice);
    const images = new Float32Array(slice.length * per);
    raw.forEach((image, k) => transformSample(image, transform, 0, slice[k], images, k * per));
    yield { start, images };
  }
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
  for await (const part of readChunks(split, indices, evalTransform(size, channels, resizeMode))) images.set(part.images, part.start * per);
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

/** Adds `count` images of `per` values each to the per-value running sum. */
function addImages(sum: Float64Array, images: Float32Array, count: number): void {
  const per = sum.length;
  for (let i = 0; i < count; i++) for (let k = 0; k < per; k++) sum[k] += images[i * per + k];
}

function meanFromSum(sum: Float64Array, count: number): Float32Array {
  return Float32Array.from(sum, (v) => v / count);
}

/** The per-pixel (and per-channel) mean image of `data`. */
export function pixelMean(data: LabelledImages): Float32Array {
  const sum = new Float64Array(data.size * data.size * data.channels);
  addImages(sum, data.images, data.n);
  return meanFromSum(sum, data.n);
}

/** The per-pixel mean image of `indices` of `split` at `size`, read chunk by chunk (never all at once). */
export async function readPixelMean(
  split: DatasetSplit,
  indices: readonly number[],
  size: number,
  channels: 1 | 3,
  resizeMode: ResizeMode,
): Promise<Float32Array> {
  if (indices.length === 0) throw new EvalDataError(`${split.description}: no images to average`);
  const sum = new Float64Array(size * size * channels);
  for await (const part of readChunks(split, indices, evalTransform(size, channels, resizeMode)))
    addImages(sum, part.images, part.images.length / sum.length);
  return meanFromSum(sum, indices.length);
}
