import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { gaussianBlur, gaussianWindow, MS_SSIM_WEIGHTS, msSsim, ssim } from '../../src/losses/ssim.ts';

// An independent reference in Float64 with plain loops: a full 2-D 11x11 window (not the
// separable passes the implementation uses), zero padding, 2x2 average pooling between scales.
type Plane = Float64Array;

function refWindow2d(size: number, sigma: number): Float64Array {
  const c = (size - 1) / 2;
  const w = new Float64Array(size * size);
  let total = 0;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      w[i * size + j] = Math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma * sigma));
      total += w[i * size + j];
    }
  }
  return w.map((v) => v / total);
}

function refBlur(p: Plane, h: number, w: number, win: Float64Array, size: number): Plane {
  const out = new Float64Array(h * w);
  const r = (size - 1) / 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = 0; i < size; i++) {
        for (let j = 0; j < size; j++) {
          const yy = y + i - r;
          const xx = x + j - r;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w) s += win[i * size + j] * p[yy * w + xx];
        }
      }
      out[y * w + x] = s;
    }
  }
  return out;
}

function refStats(a: Plane, b: Plane, h: number, w: number, range: number): { ssim: number; cs: number } {
  const win = refWindow2d(11, 1.5);
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  const mu1 = refBlur(a, h, w, win, 11);
  const mu2 = refBlur(b, h, w, win, 11);
  const e11 = refBlur(
    a.map((v) => v * v),
    h,
    w,
    win,
    11,
  );
  const e22 = refBlur(
    b.map((v) => v * v),
    h,
    w,
    win,
    11,
  );
  const e12 = refBlur(
    a.map((v, i) => v * b[i]),
    h,
    w,
    win,
    11,
  );
  let ssimSum = 0;
  let csSum = 0;
  for (let i = 0; i < h * w; i++) {
    const s11 = e11[i] - mu1[i] ** 2;
    const s22 = e22[i] - mu2[i] ** 2;
    const s12 = e12[i] - mu1[i] * mu2[i];
    const cs = (2 * s12 + c2) / (s11 + s22 + c2);
    ssimSum += ((2 * mu1[i] * mu2[i] + c1) / (mu1[i] ** 2 + mu2[i] ** 2 + c1)) * cs;
    csSum += cs;
  }
  return { ssim: ssimSum / (h * w), cs: csSum / (h * w) };
}

function refPool(p: Plane, h: number, w: number): Plane {
  const out = new Float64Array((h / 2) * (w / 2));
  for (let y = 0; y < h / 2; y++) {
    for (let x = 0; x < w / 2; x++) {
      out[y * (w / 2) + x] =
        (p[2 * y * w + 2 * x] + p[2 * y * w + 2 * x + 1] + p[(2 * y + 1) * w + 2 * x] + p[(2 * y + 1) * w + 2 * x + 1]) / 4;
    }
  }
  return out;
}

function refMsSsim(a: Plane, b: Plane, side: number, range: number): number {
  let h = side;
  let x = a;
  let y = b;
  let result = 1;
  MS_SSIM_WEIGHTS.forEach((weight, i) => {
    const { ssim: s, cs } = refStats(x, y, h, h, range);
    const last = i === MS_SSIM_WEIGHTS.length - 1;
    result *= Math.max(last ? s : cs, 1e-6) ** weight;
    if (!last) {
      x = refPool(x, h, h);
      y = refPool(y, h, h);
      h /= 2;
    }
  });
  return result;
}

/** Channel c of image n of an NHWC array, as a Float64 plane. */
function plane(data: Float32Array, n: number, c: number, side: number, channels: number): Plane {
  const p = new Float64Array(side * side);
  for (let i = 0; i < side * side; i++) p[i] = data[(n * side * side + i) * channels + c];
  return p;
}

/** Deterministic test images in [-1, 1]: smooth patterns plus a little hashed noise. */
function images(n: number, side: number, channels: number, phase: number): Float32Array {
  const out = new Float32Array(n * side * side * channels);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        for (let c = 0; c < channels; c++) {
          const noise = (Math.sin((k + 1) * 12.9898 + phase * 78.233) * 43758.5453) % 1;
          out[k++] = Math.max(-1, Math.min(1, 0.7 * Math.sin((x + phase) / (3 + i + c)) * Math.cos(y / (4 + c)) + 0.2 * noise));
        }
      }
    }
  }
  return out;
}

before(async () => {
  await initBackend('wasm');
});

describe('gaussian window', () => {
  it('sums to 1, peaks in the centre and is symmetric', () => {
    const w = gaussianWindow(11, 1.5);
    assert.equal(w.length, 11);
    assert.ok(Math.abs(w.reduce((a, b) => a + b) - 1) < 1e-6);
    for (let i = 0; i < 11; i++) {
      assert.ok(w[5] >= w[i]);
      assert.ok(Math.abs(w[i] - w[10 - i]) < 1e-7);
    }
    assert.ok(w[0] < w[4], 'falls off away from the centre (the exponent is negative)');
  });
});

describe('ssim and msSsim', () => {
  const side = 32;
  const channels = 3;
  const n = 2;
  const a = images(n, side, channels, 0);
  const b = images(n, side, channels, 4);

  it('give 1 for an image with itself', () => {
    const x = tf.tensor4d(a, [n, side, side, channels]);
    for (const v of ssim(x, x, { dataRange: 2 }).arraySync()) assert.ok(Math.abs(v - 1) < 1e-5, `ssim ${v}`);
    for (const v of msSsim(x, x, { dataRange: 2 }).arraySync()) assert.ok(Math.abs(v - 1) < 1e-5, `ms-ssim ${v}`);
    x.dispose();
  });

  it('match a Float64 reference per image', () => {
    const x = tf.tensor4d(a, [n, side, side, channels]);
    const y = tf.tensor4d(b, [n, side, side, channels]);
    const gotSsim = ssim(x, y, { dataRange: 2 }).arraySync();
    const gotMs = msSsim(x, y, { dataRange: 2 }).arraySync();
    for (let i = 0; i < n; i++) {
      let refS = 0;
      let refMs = 0;
      for (let c = 0; c < channels; c++) {
        const pa = plane(a, i, c, side, channels);
        const pb = plane(b, i, c, side, channels);
        refS += refStats(pa, pb, side, side, 2).ssim / channels;
        refMs += refMsSsim(pa, pb, side, 2) / channels;
      }
      assert.ok(refMs > 0.05 && refMs < 0.95, `the pair is neither identical nor unrelated (${refMs})`);
      assert.ok(Math.abs(gotSsim[i] - refS) < 1e-4, `ssim image ${i}: ${gotSsim[i]} vs ${refS}`);
      assert.ok(Math.abs(gotMs[i] - refMs) < 1e-4, `ms-ssim image ${i}: ${gotMs[i]} vs ${refMs}`);
    }
    tf.dispose([x, y]);
  });

  it('stay finite, with finite gradients, when contrast is negative', () => {
    const x = tf.tensor4d(a, [n, side, side, channels]);
    const neg = tf.neg(x) as tf.Tensor4D;
    const value = msSsim(x, neg, { dataRange: 2 });
    const grad = tf.grad((v: tf.Tensor) => tf.sum(msSsim(v as tf.Tensor4D, neg, { dataRange: 2 })))(x);
    assert.ok(value.arraySync().every((v) => Number.isFinite(v) && v >= 0 && v < 0.1));
    assert.ok(
      grad.dataSync().every((v) => Number.isFinite(v)),
      'gradient has no NaN/Inf',
    );
    tf.dispose([x, neg, value, grad]);
  });

  it('rejects mismatched shapes and even windows', () => {
    const x = tf.zeros([1, 32, 32, 1]) as tf.Tensor4D;
    const y = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    assert.throws(() => ssim(x, y, { dataRange: 2 }), /same shape/);
    assert.throws(() => ssim(x, x, { dataRange: 2, windowSize: 10 }), /odd/);
    tf.dispose([x, y]);
  });
});

describe('gaussianBlur', () => {
  it('has the gradient of the plain separable convolution', () => {
    const window = gaussianWindow(11, 1.5);
    const x = tf.tensor4d(images(2, 16, 1, 0.3), [2, 16, 16, 1]);
    const weights = tf.tensor4d(images(2, 16, 1, 1.7), [2, 16, 16, 1]);
    const plain = (v: tf.Tensor): tf.Tensor => {
      const vertical = tf.tensor4d(window, [11, 1, 1, 1]);
      const horizontal = tf.tensor4d(window, [1, 11, 1, 1]);
      return tf.sum(tf.mul(tf.conv2d(tf.conv2d(v as tf.Tensor4D, vertical, 1, 'same'), horizontal, 1, 'same'), weights));
    };
    const custom = (v: tf.Tensor): tf.Tensor => tf.sum(tf.mul(gaussianBlur(v as tf.Tensor4D, window), weights));
    const expected = tf.grad(plain)(x).dataSync();
    const got = tf.grad(custom)(x).dataSync();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `element ${i}: ${got[i]} vs ${expected[i]}`);
    tf.dispose([x, weights]);
  });
});
