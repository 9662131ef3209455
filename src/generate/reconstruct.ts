// A trained run's reconstructions of given images: encode to the posterior mean, decode.
import { tf } from '../util/tf.ts';
import type { LoadedRun } from '../run/checkpoint.ts';
import type { ImageStack } from '../run/images.ts';

/** `images` NHWC in [-1, 1] at the model's size and channels; `labels` (N x L one-hot) for the conditional model. */
export async function reconstruct(run: LoadedRun, images: ImageStack, labels?: Float32Array): Promise<ImageStack> {
  const { image_size: size, in_channels: channels } = run.config.model;
  if (images.size !== size || images.channels !== channels) {
    throw new Error(`images are ${images.size}x${images.size}x${images.channels}; this run's model takes ${size}x${size}x${channels}`);
  }
  const out = tf.tidy(() => {
    const x = tf.tensor4d(images.data, [images.n, size, size, channels]);
    const width = labels ? labels.length / images.n : 0;
    return run.model.reconstruct(x, labels ? tf.tensor2d(labels, [images.n, width]) : undefined);
  });
  let data: Float32Array;
  try {
    data = (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
  return { data, n: images.n, size, channels };
}
