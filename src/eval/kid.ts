// Kernel distance (KID-style): unbiased MMD^2 with the cubic polynomial kernel
// k(x, y) = (x.y / d + 1)^3, averaged over random subsets; the spread over subsets gives a
// standard error. Unbiased means the diagonal k(x_i, x_i) terms are left out, so two samples of
// one distribution give values scattered around 0 (negative ones included). When neither set is
// larger than the subset size, every subset would be the whole of both sets: the value is computed
// once over all rows and has no error bar (a spread of identical values would pretend to one).
import { mulberry32 } from '../util/rng.ts';

export interface KernelDistance {
  mean: number;
  /** Standard deviation over subsets / sqrt(subsets); null when computed once over all rows. */
  std_error: number | null;
  subsets: number;
  subset_size: number;
}

function polyKernel(x: Float32Array | Float64Array, i: number, y: Float32Array | Float64Array, j: number, d: number): number {
  let dot = 0;
  for (let k = 0; k < d; k++) dot += x[i * d + k] * y[j * d + k];
  return (dot / d + 1) ** 3;
}

/** Unbiased MMD^2 between row sets x (rows xi) and y (rows yi), both of size m >= 2. */
export function mmdUnbiased(
  x: Float32Array | Float64Array,
  xi: readonly number[],
  y: Float32Array | Float64Array,
  yi: readonly number[],
  d: number,
): number {
  const m = xi.length;
  if (yi.length !== m || m < 2) throw new RangeError(`mmdUnbiased: need two subsets of equal size >= 2, got ${m} and ${yi.length}`);
  let kxx = 0;
  let kyy = 0;
  let kxy = 0;
  for (let a = 0; a < m; a++) {
    for (let b = a + 1; b < m; b++) {
      kxx += polyKernel(x, xi[a], x, xi[b], d);
      kyy += polyKernel(y, yi[a], y, yi[b], d);
    }
    for (let b = 0; b < m; b++) kxy += polyKernel(x, xi[a], y, yi[b], d);
  }
  // Off-diagonal sums were over a < b: double them for the full off-diagonal.
  return (2 * kxx + 2 * kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
}

/** Seeded draw of `k` distinct indices from [0, n) (partial Fisher-Yates). */
export function sampleWithoutReplacement(n: number, k: number, random: () => number): number[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (n - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}

export function kernelDistance(
  real: Float32Array | Float64Array,
  nReal: number,
  fake: Float32Array | Float64Array,
  nFake: number,
  d: number,
  opts: { seed: number; subsets?: number; subsetSize?: number },
): KernelDistance {
  const subsetSize = Math.min(opts.subsetSize ?? 100, nReal, nFake);
  if (subsetSize < 2) throw new RangeError(`kernelDistance: need at least 2 real and 2 generated feature rows, got ${nReal} and ${nFake}`);
  if (subsetSize === nReal && subsetSize === nFake) {
    const everyRow = Array.from({ length: subsetSize }, (_, i) => i);
    return { mean: mmdUnbiased(real, everyRow, fake, everyRow, d), std_error: null, subsets: 1, subset_size: subsetSize };
  }
  const subsets = opts.subsets ?? 10;
  const random = mulberry32(opts.seed);
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const xi = sampleWithoutReplacement(nReal, subsetSize, random);
    const yi = sampleWithoutReplacement(nFake, subsetSize, random);
    values.push(mmdUnbiased(real, xi, fake, yi, d));
  }
  const mean = values.reduce((s, v) => s + v, 0) / subsets;
  const variance = subsets > 1 ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (subsets - 1) : 0;
  return { mean, std_error: subsets > 1 ? Math.sqrt(variance / subsets) : null, subsets, subset_size: subsetSize };
}
