// Classical restorations the model is measured against, in plain JS on NHWC Float32Arrays (the
// same on every backend). Imputation: mean fill and harmonic (Laplace) inpainting. Denoising: a
// Gaussian blur and a median filter. Borders are reflected (… 2 1 | 0 1 2 …, no edge repeat).

import type { ImageStack } from '../run/images.ts';

/** Reflect an index into 0..size-1 (numpy/scipy 'mirror'). */
function reflect(i: number, size: number): number {
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  let j = ((i % period) + period) % period;
  if (j >= size) j = period - j;
  return j;
}

/** Missing pixels (mask 1) of each image and channel set to the mean of its observed ones. */
export function meanFill(images: ImageStack, masks: Uint8Array): Float32Array {
  const { n, size, channels } = images;
  const per = size * size;
  const out = Float32Array.from(images.data);
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      let count = 0;
      for (let p = 0; p < per; p++) {
        if (masks[k * per + p] === 0) {
          sum += images.data[(k * per + p) * channels + c]!;
          count++;
        }
      }
      const mean = count > 0 ? sum / count : 0;
      for (let p = 0; p < per; p++) if (masks[k * per + p] === 1) out[(k * per + p) * channels + c] = mean;
    }
  }
  return out;
}

export interface HarmonicOptions {
  /** Stop when no update moves a value by more than this ([-1, 1] units). */
  tolerance?: number;
  maxIterations?: number;
}

/**
 * Harmonic inpainting: the missing values solve Laplace's equation (each is the mean of its 4
 * neighbours) with the observed values fixed; at the image border only the neighbours inside count
 * (zero normal derivative). Solved by successive over-relaxation from the mean fill.
 */
export function harmonicInpaint(images: ImageStack, masks: Uint8Array, opts: HarmonicOptions = {}): Float32Array {
  const { n, size, channels } = images;
  const tolerance = opts.tolerance ?? 1e-6;
  const maxIterations = opts.maxIterations ?? 20000;
  const per = size * size;
  const out = meanFill(images, masks);
  // The optimal SOR factor for Laplace on an m x m grid is 2 / (1 + sin(pi / (m + 1))).
  const omega = 2 / (1 + Math.sin(Math.PI / (size + 1)));
  const neighbours = [
    [-1, 0],
    [1, 0],
    [0, -1],
    [0, 1],
  ] as const;
  for (let k = 0; k < n; k++) {
    const holes: number[] = [];
    for (let p = 0; p < per; p++) if (masks[k * per + p] === 1) holes.push(p);
    for (let c = 0; c < channels; c++) {
      const at = (p: number): number => (k * per + p) * channels + c;
      for (let iter = 0; iter < maxIterations; iter++) {
        let change = 0;
        for (const p of holes) {
          const y = Math.floor(p / size);
          const x = p % size;
          let sum = 0;
          let count = 0;
          for (const [dy, dx] of neighbours) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= size || xx < 0 || xx >= size) continue;
            sum += out[at(yy * size + xx)]!;
            count++;
          }
          const delta = omega * (sum / count - out[at(p)]!);
          out[at(p)] += delta;
          change = Math.max(change, Math.abs(delta));
        }
        if (change < tolerance) break;
      }
    }
  }
  return out;
}

/** Normalised 1-D Gaussian weights of standard deviation `sigma`, radius ceil(3 sigma). */
export function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const w = new Float64Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++) total += w[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  return w.map((v) => v / total);
}

/** Separable Gaussian blur of every image and channel, reflected borders. */
export function gaussianBlur(images: ImageStack, sigma: number): Float32Array {
  const { n, size, channels, data } = images;
  const w = gaussianKernel(sigma);
  const radius = (w.length - 1) / 2;
  const tmp = new Float64Array(data.length);
  const out = new Float32Array(data.length);
  const idx = (k: number, y: number, x: number, c: number): number => ((k * size + y) * size + x) * channels + c;
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let i = -radius; i <= radius; i++) s += w[i + radius]! * data[idx(k, y, reflect(x + i, size), c)]!;
          tmp[idx(k, y, x, c)] = s;
        }
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let c = 0; c < channels; c++) {
          let s = 0;
          for (let i = -radius; i <= radius; i++) s += w[i + radius]! * tmp[idx(k, reflect(y + i, size), x, c)]!;
          out[idx(k, y, x, c)] = s;
        }
  }
  return out;
}

/** Median over a `window` x `window` square (odd) of every image and channel, reflected borders. */
export function medianFilter(images: ImageStack, window: number): Float32Array {
  if (!Number.isInteger(window) || window < 1 || window % 2 === 0)
    throw new RangeError(`median window must be an odd integer >= 1, got ${window}`);
  const { n, size, channels, data } = images;
  const r = (window - 1) / 2;
  const out = new Float32Array(data.length);
  const values = new Float32Array(window * window);
  for (let k = 0; k < n; k++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let c = 0; c < channels; c++) {
          let m = 0;
          for (let dy = -r; dy <= r; dy++)
            for (let dx = -r; dx <= r; dx++)
              values[m++] = data[((k * size + reflect(y + dy, size)) * size + reflect(x + dx, size)) * channels + c]!;
          values.sort();
          out[((k * size + y) * size + x) * channels + c] = values[(m - 1) / 2]!;
        }
  return out;
}
