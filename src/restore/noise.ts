// The corruptions of the denoising evaluation: util/noise.ts's noise models, each image's stream
// keyed by (seed, split stream, image index) so a split's noisy images are the same in every run.
import { noisyImages, parseNoiseSpec, type NoiseSpec } from '../util/noise.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { NoiseSpecError } from './errors.ts';

export { noiseName, type NoiseSpec } from '../util/noise.ts';

const NOISE_KEY = 40;

export function parseNoise(text: string): NoiseSpec {
  const parsed = parseNoiseSpec(text);
  if ('problem' in parsed) throw new NoiseSpecError(`--noise ${text}: ${parsed.problem}`);
  return parsed.spec;
}

/**
 * Noisy copies of `n` images (NHWC, [-1, 1]), image k drawn from (seed, streamKey, firstIndex + k);
 * streamKey keeps splits apart.
 */
export function addNoise(
  images: Float32Array,
  n: number,
  channels: number,
  spec: NoiseSpec,
  seed: number,
  firstIndex: number,
  streamKey = 0,
): Float32Array {
  return noisyImages(images, n, channels, spec, (k) => mulberry32(hashKeys(seed, Stream.eval, NOISE_KEY, streamKey, firstIndex + k)));
}
