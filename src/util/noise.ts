// Noise models of images, on the [0, 1] intensity scale users think in (images stay in the model's
// [-1, 1] units: u = (x + 1) / 2). One definition for the denoising evaluation (restore/noise.ts)
// and the denoising training criterion (train.corrupt); each image draws from its own JS stream, so
// the same image gets the same noise on every backend and whatever the batching.
//   gaussian:S    u + S n, n ~ N(0, 1), clipped to [0, 1]
//   saltpepper:P  each pixel (all channels) replaced with probability P, by 0 or 1 with equal odds
//   poisson:PEAK  u <- Poisson(PEAK u) / PEAK (photon counting, PEAK photons at white), clipped to 1;
//                 counts above 30 expected photons are drawn from the normal approximation

export type NoiseSpec = { kind: 'gaussian'; sigma: number } | { kind: 'saltpepper'; p: number } | { kind: 'poisson'; peak: number };

/** What a noise spec looks like, for the one-line errors of the callers that read one. */
const NOISE_SYNTAX = 'gaussian:SIGMA (e.g. gaussian:0.1), saltpepper:P (0 < P < 1) or poisson:PEAK (> 0), on the [0, 1] scale';

/** The noise `text` names, or why it names none (a phrase the caller puts after its key). */
export function parseNoiseSpec(text: string): { spec: NoiseSpec } | { problem: string } {
  const m = /^(gaussian|saltpepper|poisson):([0-9.eE+-]+)$/.exec(text.trim());
  const v = m ? Number(m[2]) : NaN;
  if (!m || !Number.isFinite(v) || v <= 0) return { problem: `expected ${NOISE_SYNTAX}` };
  if (m[1] === 'saltpepper')
    return v < 1 ? { spec: { kind: 'saltpepper', p: v } } : { problem: 'the salt-and-pepper probability must be below 1' };
  return { spec: m[1] === 'gaussian' ? { kind: 'gaussian', sigma: v } : { kind: 'poisson', peak: v } };
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
 * Noisy copies of `n` images (NHWC, [-1, 1], `channels` values a pixel); image k draws from
 * `streamOf(k)`, a uniform [0, 1) generator the caller keys to that image.
 */
export function noisyImages(
  images: Float32Array,
  n: number,
  channels: number,
  spec: NoiseSpec,
  streamOf: (k: number) => () => number,
): Float32Array {
  const out = new Float32Array(images.length);
  const values = images.length / n;
  for (let k = 0; k < n; k++) {
    const rand = streamOf(k);
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
