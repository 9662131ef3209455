// Corruptions for denoising, on the [0, 1] intensity scale users think in (images stay in the
// model's [-1, 1] units: u = (x + 1) / 2). Drawn in JS per image from (seed, image index), so the
// same images get the same noise on every backend and whatever the batching.
//   gaussian:S    u + S n, n ~ N(0, 1), clipped to [0, 1]
//   saltpepper:P  each pixel (all channels) replaced with probability P, by 0 or 1 with equal odds
//   poisson:PEAK  u <- Poisson(PEAK u) / PEAK (photon counting, PEAK photons at white), clipped to 1;
//                 counts above 30 expected photons are drawn from the normal approximation
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { NoiseSpecError } from './errors.ts';

const NOISE_KEY = 40;

export type NoiseSpec = { kind: 'gaussian'; sigma: number } | { kind: 'saltpepper'; p: number } | { kind: 'poisson'; peak: number };

export function parseNoise(spec: string): NoiseSpec {
  const m = /^(gaussian|saltpepper|poisson):([0-9.eE+-]+)$/.exec(spec.trim());
  const v = m ? Number(m[2]) : NaN;
  if (!m || !Number.isFinite(v) || v <= 0) {
    throw new NoiseSpecError(
      `--noise ${spec}: expected gaussian:SIGMA (e.g. gaussian:0.1), saltpepper:P (0 < P < 1) or poisson:PEAK (> 0), on the [0, 1] scale`,
    );
  }
  if (m[1] === 'saltpepper') {
    if (v >= 1) throw new NoiseSpecError(`--noise ${spec}: the salt-and-pepper probability must be below 1`);
    return { kind: 'saltpepper', p: v };
  }
  return m[1] === 'gaussian' ? { kind: 'gaussian', sigma: v } : { kind: 'poisson', peak: v };
}

export function noiseName(spec: NoiseSpec): string {
  return spec.kind === 'gaussian' ? `gaussian:${spec.sigma}` : spec.kind === 'saltpepper' ? `saltpepper:${spec.p}` : `poisson:${spec.peak}`;
}

function standardNormal(rand: () => number): number {
  // Box-Muller; 1 - u keeps the logarithm finite.
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function poisson(lambda: number, rand: () => number): number {
  if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * standardNormal(rand)));
  const limit = Math.exp(-lambda);
  let k = 0;
  for (let p = rand(); p > limit; p *= rand()) k++;
  return k;
}

const clip01 = (u: number): number => (u < 0 ? 0 : u > 1 ? 1 : u);

/**
 * Noisy copies of `n` images (NHWC, [-1, 1], `per` = size * size pixels of `channels` values),
 * image k drawn from (seed, streamKey, firstIndex + k); streamKey keeps splits apart.
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
  const out = new Float32Array(images.length);
  const values = images.length / n;
  for (let k = 0; k < n; k++) {
    const rand = mulberry32(hashKeys(seed, Stream.eval, NOISE_KEY, streamKey, firstIndex + k));
    for (let v = 0; v < values; v += channels) {
      const flip = spec.kind === 'saltpepper' && rand() < spec.p ? (rand() < 0.5 ? 0 : 1) : -1;
      for (let c = 0; c < channels; c++) {
        const i = k * values + v + c;
        const u = (images[i]! + 1) / 2;
        let noisy: number;
        if (spec.kind === 'gaussian') noisy = clip01(u + spec.sigma * standardNormal(rand));
        else if (spec.kind === 'saltpepper') noisy = flip < 0 ? u : flip;
        else noisy = clip01(poisson(spec.peak * u, rand) / spec.peak);
        out[i] = 2 * noisy - 1;
      }
    }
  }
  return out;
}
