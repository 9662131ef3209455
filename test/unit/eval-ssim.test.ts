// Eval SSIM and MS-SSIM on valid windows against a straightforward float64 double loop written
// here (every window wholly inside the image, pytorch_msssim's pooling and clamping), against a
// value from skimage's algorithm run on scipy, and against closed forms.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { evalMsSsim, evalSsim, msSsimLevels, msSsimWeights } from '../../src/eval/ssim.ts';
import { MS_SSIM_WEIGHTS, ssim as paddedSsim, SsimInputError } from '../../src/losses/ssim.ts';
import { mulberry32 } from '../../src/util/rng.ts';

before(async () => {
  await initBackend('wasm');
});

const RANGE = 2;
const C1 = (0.01 * RANGE) ** 2;
const C2 = (0.03 * RANGE) ** 2;

/** One channel as a float64 h x w plane. */
interface Plane {
  h: number;
  w: number;
  v: Float64Array;
}

function gaussian11(): Float64Array {
  const g = Float64Array.from({ length: 11 }, (_, i) => Math.exp(-((i - 5) ** 2) / (2 * 1.5 * 1.5)));
  const total = g.reduce((s, x) => s + x, 0);
  return g.map((x) => x / total);
}

/** Mean SSIM and mean contrast-structure over every 11x11 window wholly inside the plane. */
function referenceSsimCs(x: Plane, y: Plane): { ssim: number; cs: number } {
  const g = gaussian11();
  let ssimSum = 0;
  let csSum = 0;
  let windows = 0;
  for (let top = 0; top + 11 <= x.h; top++) {
    for (let left = 0; left + 11 <= x.w; left++) {
      let mx = 0,
        my = 0,
        sxx = 0,
        syy = 0,
        sxy = 0;
      for (let i = 0; i < 11; i++) {
        for (let j = 0; j < 11; j++) {
          const wgt = g[i] * g[j];
          const a = x.v[(top + i) * x.w + left + j];
          const b = y.v[(top + i) * y.w + left + j];
          mx += wgt * a;
          my += wgt * b;
          sxx += wgt * a * a;
          syy += wgt * b * b;
          sxy += wgt * a * b;
        }
      }
      const cs = (2 * (sxy - mx * my) + C2) / (sxx - mx * mx + syy - my * my + C2);
      ssimSum += ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * cs;
      csSum += cs;
      windows++;
    }
  }
  return { ssim: ssimSum / windows, cs: csSum / windows };
}

/** pytorch_msssim's avg_pool2d(kernel 2, stride 2, padding side % 2), zero padding counted. */
function referencePool(p: Plane): Plane {
  const ph = p.h % 2;
  const pw = p.w % 2;
  const h = Math.floor((p.h + 2 * ph - 2) / 2) + 1;
  const w = Math.floor((p.w + 2 * pw - 2) / 2) + 1;
  const v = new Float64Array(h * w);
  const at = (i: number, j: number): number => (i < 0 || j < 0 || i >= p.h || j >= p.w ? 0 : p.v[i * p.w + j]);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++)
      v[i * w + j] =
        (at(2 * i - ph, 2 * j - pw) +
          at(2 * i - ph, 2 * j + 1 - pw) +
          at(2 * i + 1 - ph, 2 * j - pw) +
          at(2 * i + 1 - ph, 2 * j + 1 - pw)) /
        4;
  }
  return { h, w, v };
}

function referenceMsSsim(x: Plane, y: Plane, weights: readonly number[]): number {
  let product = 1;
  weights.forEach((weight, i) => {
    const last = i === weights.length - 1;
    const { ssim, cs } = referenceSsimCs(x, y);
    product *= Math.max(last ? ssim : cs, 0) ** weight;
    x = referencePool(x);
    y = referencePool(y);
  });
  return product;
}

/** Channel c of image k of an NHWC array as a plane. */
function plane(data: Float32Array, k: number, h: number, w: number, channels: number, c: number): Plane {
  const v = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) v[i] = data[(k * h * w + i) * channels + c];
  return { h, w, v };
}

/** A seeded image pair batch: y is x blended with independent noise, both smoothed a little and clipped to [-1, 1]. */
function pair(n: number, h: number, w: number, channels: number, seed: number, mix: number): { x: Float32Array; y: Float32Array } {
  const random = mulberry32(seed);
  const size = n * h * w * channels;
  const x = new Float32Array(size);
  const y = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const base = Math.sin(i * 0.013) * 0.6 + (random() - 0.5) * 0.8;
    x[i] = Math.max(-1, Math.min(1, base));
    y[i] = Math.max(-1, Math.min(1, (1 - mix) * base + mix * (random() * 2 - 1)));
  }
  return { x, y };
}

function perImageReference(
  x: Float32Array,
  y: Float32Array,
  shape: [number, number, number, number],
  f: (a: Plane, b: Plane) => number,
): number[] {
  const [n, h, w, c] = shape;
  return Array.from({ length: n }, (_, k) => {
    let sum = 0;
    for (let ch = 0; ch < c; ch++) sum += f(plane(x, k, h, w, c, ch), plane(y, k, h, w, c, ch));
    return sum / c;
  });
}

function evaluate(f: typeof evalSsim, x: Float32Array, y: Float32Array, shape: [number, number, number, number]): number[] {
  const out = tf.tidy(() => f(tf.tensor4d(x, shape), tf.tensor4d(y, shape), RANGE));
  const values = Array.from(out.dataSync());
  out.dispose();
  return values;
}

function assertAllClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tol, `${what}[${i}]: ${a} vs reference ${expected[i]}`));
}

test('SSIM on valid windows equals the float64 double loop (non-square, 3 channels, 2 images)', () => {
  const shape: [number, number, number, number] = [2, 17, 23, 3];
  const { x, y } = pair(...shape, 1, 0.5);
  const expected = perImageReference(x, y, shape, (a, b) => referenceSsimCs(a, b).ssim);
  assertAllClose(evaluate(evalSsim, x, y, shape), expected, 2e-5, 'ssim');
  // Zero-padded windows (the training loss) see black borders: a clearly different number.
  const padded = tf.tidy(() => paddedSsim(tf.tensor4d(x, shape), tf.tensor4d(y, shape), { dataRange: RANGE }).arraySync());
  assert.ok(Math.abs(padded[0] - expected[0]) > 1e-3, `padded ${padded[0]} vs valid ${expected[0]}`);
});

test('SSIM matches skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2)', () => {
  // skimage's algorithm on scipy.ndimage.gaussian_filter (truncate 3.5, reflect), cropped by 5, float64:
  // x = 0.9 sin(0.37 i + 0.61 j), y = 0.8 sin(0.37 i + 0.59 j + 0.2) + 0.1 cos(1.7 i j / 13).
  const cases: [number, number, number][] = [
    [20, 24, 0.9100265560906902],
    [16, 16, 0.9251161669449122],
  ];
  for (const [h, w, skimage] of cases) {
    const x = new Float32Array(h * w);
    const y = new Float32Array(h * w);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        x[i * w + j] = 0.9 * Math.sin(0.37 * i + 0.61 * j);
        y[i * w + j] = 0.8 * Math.sin(0.37 * i + 0.59 * j + 0.2) + 0.1 * Math.cos((1.7 * i * j) / 13);
      }
    }
    assertAllClose(evaluate(evalSsim, x, y, [1, h, w, 1]), [skimage], 1e-5, `skimage ${h}x${w}`);
  }
});

test('SSIM of two constant images is the luminance term alone: (2ab + C1) / (a^2 + b^2 + C1)', () => {
  const shape: [number, number, number, number] = [1, 12, 12, 1];
  const [a, b] = [0.5, -0.25];
  const got = evaluate(evalSsim, new Float32Array(144).fill(a), new Float32Array(144).fill(b), shape);
  assertAllClose(got, [(2 * a * b + C1) / (a * a + b * b + C1)], 1e-6, 'constant ssim');
  assertAllClose(evaluate(evalMsSsim, new Float32Array(144).fill(a), new Float32Array(144).fill(a), shape), [1], 1e-6, 'identical ms-ssim');
});

test('MS-SSIM scales: window 11 kept, the most scales whose every window fits (pytorch_msssim: side > 10 * 2^(L-1))', () => {
  const expected: [number, number][] = [
    [11, 1],
    [20, 1],
    [21, 2],
    [28, 2],
    [32, 2],
    [40, 2],
    [41, 3],
    [64, 3],
    [80, 3],
    [81, 4],
    [128, 4],
    [160, 4],
    [161, 5],
    [256, 5],
    [1024, 5],
  ];
  for (const [side, levels] of expected) assert.equal(msSsimLevels(side), levels, `side ${side}`);
  assert.throws(() => msSsimLevels(10), SsimInputError);
  assert.deepEqual(msSsimWeights(5), [...MS_SSIM_WEIGHTS]);
  const three = msSsimWeights(3);
  const total = 0.0448 + 0.2856 + 0.3001;
  assertAllClose(three, [0.0448 / total, 0.2856 / total, 0.3001 / total], 1e-15, 'renormalised weights');
  assert.throws(() => tf.tidy(() => evalSsim(tf.zeros([1, 10, 10, 1]), tf.zeros([1, 10, 10, 1]), RANGE)), SsimInputError);
});

test('MS-SSIM on valid windows equals the float64 reference: odd sides pooled with a zero border (45 -> 23 -> 12)', () => {
  const shape: [number, number, number, number] = [2, 45, 45, 3];
  const { x, y } = pair(...shape, 2, 0.4);
  assert.equal(msSsimLevels(45), 3);
  const expected = perImageReference(x, y, shape, (a, b) => referenceMsSsim(a, b, msSsimWeights(3)));
  assertAllClose(evaluate(evalMsSsim, x, y, shape), expected, 5e-5, 'ms-ssim 45');
});

test('MS-SSIM at 64x64: three scales (64, 32, 16), as the float64 reference', () => {
  const shape: [number, number, number, number] = [1, 64, 64, 1];
  const { x, y } = pair(...shape, 3, 0.6);
  const expected = perImageReference(x, y, shape, (a, b) => referenceMsSsim(a, b, msSsimWeights(3)));
  assertAllClose(evaluate(evalMsSsim, x, y, shape), expected, 5e-5, 'ms-ssim 64');
});

test('MS-SSIM clamps a negative contrast-structure to 0 (pytorch_msssim relu): an inverted image scores 0', () => {
  const shape: [number, number, number, number] = [1, 24, 24, 1];
  const { x } = pair(...shape, 4, 0);
  const inverted = x.map((v) => -v);
  assertAllClose(evaluate(evalMsSsim, x, inverted, shape), [0], 0, 'inverted ms-ssim');
});

test('no tensors leak', () => {
  const before = tf.memory().numTensors;
  const shape: [number, number, number, number] = [1, 32, 32, 3];
  const { x, y } = pair(...shape, 5, 0.5);
  evaluate(evalSsim, x, y, shape);
  evaluate(evalMsSsim, x, y, shape);
  assert.equal(tf.memory().numTensors, before);
});
