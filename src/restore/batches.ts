// Consecutive index ranges: every restoration runs batch by batch so memory stays bounded.
import { tf } from '../util/tf.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import type { ImageStack } from '../run/images.ts';

export function ranges(n: number, batch: number): { start: number; count: number }[] {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be an integer >= 1, got ${batch}`);
  const out: { start: number; count: number }[] = [];
  for (let start = 0; start < n; start += batch) out.push({ start, count: Math.min(batch, n - start) });
  return out;
}

export function asImages(data: LabelledImages): ImageStack {
  return { data: data.images, n: data.n, size: data.size, channels: data.channels };
}

/** Values start .. start + count - 1 of a stack as a tensor. */
export function sliceTensor(data: Float32Array, start: number, count: number, size: number, channels: number): tf.Tensor4D {
  const per = size * size * channels;
  return tf.tensor4d(data.subarray(start * per, (start + count) * per), [count, size, size, channels]);
}

/** Label rows for the model call, for the conditional model only (the others take none). */
export function labelsFor(model: VaeModel, data: LabelledImages, start: number, count: number): tf.Tensor2D | undefined {
  if (model.labelWidth === 0 || data.labelWidth === 0) return undefined;
  const w = data.labelWidth;
  return tf.tensor2d(data.labels.subarray(start * w, (start + count) * w), [count, w]);
}
