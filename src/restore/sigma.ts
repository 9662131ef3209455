// The decoder standard deviation of the Gaussian likelihood p(x|z) = N(decode(z), sigma^2 I) that
// the Metropolis ratio and the scores use. Its maximum-likelihood value on complete images, as
// src/eval's decoder_sigma: sqrt(mean squared error of reconstructions from one z ~ q(z|x)
// per image), the "optimal sigma" of sigma-VAE (Rybkin et al. 2021). It is fitted on a split
// other than the one scored (validation), so each image's score depends on that image alone.
import { tf } from '../util/tf.ts';
import type { LabelledImages } from '../eval/images.ts';
import type { VaeModel } from '../models/base.ts';
import { stepNoise, Stream } from '../util/rng.ts';
import { labelsFor, ranges, sliceTensor } from './batches.ts';
import { sampleLatent } from './latent.ts';
import { requireEncoder } from './samplers.ts';

const SIGMA_KEY = 50;
const MIN_VARIANCE = 1e-10;

export async function fitDecoderSigma(model: VaeModel, data: LabelledImages, seed: number, batch = 32): Promise<number> {
  requireEncoder(model);
  // Each batch's squared error stays on the device; all of them come back in one read at the end.
  const parts: tf.Tensor[] = [];
  let values: Float32Array = new Float32Array(0);
  try {
    for (const { start, count } of ranges(data.n, batch)) {
      parts.push(
        tf.tidy(() => {
          const x = sliceTensor(data.images, start, count, data.size, data.channels);
          const labels = labelsFor(model, data, start, count);
          const z = sampleLatent(model.encode(x, labels, false), stepNoise(seed, Stream.eval, SIGMA_KEY, start));
          return tf.sum(tf.square(tf.sub(model.decode(z, labels, false), x)));
        }),
      );
    }
    if (parts.length > 0) {
      const all = tf.stack(parts);
      parts.push(all);
      values = (await all.data()) as Float32Array;
    }
  } finally {
    tf.dispose(parts);
  }
  let sse = 0;
  for (const v of values) sse += v;
  return Math.sqrt(Math.max(sse / data.images.length, MIN_VARIANCE));
}
