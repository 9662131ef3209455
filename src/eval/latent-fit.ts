// The latent density of a checkpoint that predates latent-density.json, fitted on demand from
// images in memory (the training split's, and the validation split's to choose the mixture's size).
import type { VaeModel } from '../models/base.ts';
import { fitLatentDensity, type LatentDensity } from '../models/latent-density.ts';
import { LatentCollector } from '../models/latent-encode.ts';
import type { LabelledImages } from './images.ts';

async function encodeAll(model: VaeModel, data: LabelledImages | undefined, classLabels: boolean): Promise<LatentCollector> {
  const collector = new LatentCollector(model, classLabels);
  if (!data) return collector;
  const per = data.size * data.size * data.channels;
  for (let start = 0; start < data.n; start += 64) {
    const m = Math.min(64, data.n - start);
    await collector.add({
      images: data.images.subarray(start * per, (start + m) * per),
      labels: data.labels.subarray(start * data.labelWidth, (start + m) * data.labelWidth),
      n: m,
      size: data.size,
      channels: data.channels,
      labelWidth: data.labelWidth,
    });
  }
  return collector;
}

export async function fitLatentDensityOf(
  model: VaeModel,
  train: LabelledImages,
  validation: LabelledImages | undefined,
  step: number,
  seed: number,
): Promise<LatentDensity> {
  const classLabels = train.labelKind === 'class';
  return fitLatentDensity(
    (await encodeAll(model, train, classLabels)).latents(),
    (await encodeAll(model, validation, classLabels)).latents(),
    {
      step,
      seed,
      classCount: classLabels ? model.labelWidth : 0,
    },
  );
}
