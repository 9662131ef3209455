import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { capacityLoss, linearCapacity } from '../../src/losses/capacity.ts';
import { bceWithLogits } from '../../src/losses/gan.ts';
import { annealedTemperature, gumbelSoftmax } from '../../src/losses/gumbel.ts';
import { categoricalKl, gaussianKl, gaussianKlPerSample } from '../../src/losses/kl.ts';
import { gaussianNllPerImage, mse } from '../../src/losses/reconstruction.ts';

const close = (actual: number, expected: number, tol = 1e-5): void =>
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
const value = (t: tf.Tensor): number => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

before(async () => {
  await initBackend('wasm');
});

describe('gaussian KL', () => {
  it('matches the closed form by hand and is positive', () => {
    // Sample 1: mu (1, 0), var (1, 2): 0.5 * [(1 + 1 - 1 - 0) + (2 + 0 - 1 - ln 2)] = 1 - ln(2)/2.
    // Sample 2: mu (0, 2), var (1, 1): 0.5 * [0 + 4] = 2.
    const mu = tf.tensor2d([
      [1, 0],
      [0, 2],
    ]);
    const logvar = tf.tensor2d([
      [0, Math.log(2)],
      [0, 0],
    ]);
    const perSample = gaussianKlPerSample(mu, logvar).arraySync();
    close(perSample[0], 1 - Math.log(2) / 2);
    close(perSample[1], 2);
    close(value(gaussianKl(mu, logvar)), (3 - Math.log(2) / 2) / 2);
    tf.dispose([mu, logvar]);
  });

  it('is zero at the prior', () => {
    const zeros = tf.zeros([3, 4]) as tf.Tensor2D;
    close(value(gaussianKl(zeros, zeros)), 0);
    zeros.dispose();
  });
});

describe('categorical KL to the uniform prior', () => {
  it('is 0 for uniform logits and q log q + log K otherwise', () => {
    const uniform = tf.zeros([2, 5]) as tf.Tensor2D;
    close(value(categoricalKl(uniform)), 0);
    // softmax(ln 3, 0) = (3/4, 1/4)
    const skewed = tf.tensor2d([[Math.log(3), 0]]);
    close(value(categoricalKl(skewed)), 0.75 * Math.log(0.75) + 0.25 * Math.log(0.25) + Math.log(2));
    tf.dispose([uniform, skewed]);
  });
});

describe('reconstruction and GAN losses', () => {
  it('mse is the mean of squared differences', () => {
    const a = tf.tensor1d([1, 2, 3, 4]);
    const b = tf.tensor1d([1, 0, 3, 1]);
    close(value(mse(a, b)), (0 + 4 + 0 + 9) / 4);
    tf.dispose([a, b]);
  });

  it('gaussianNllPerImage is half the squared error summed per image, averaged over images', () => {
    const a = tf.tensor4d([1, 2, 3, 4, 0, 0, 0, 0], [2, 2, 2, 1]);
    const b = tf.tensor4d([1, 0, 3, 1, 1, 1, 1, 1], [2, 2, 2, 1]);
    // Image 0: 0 + 4 + 0 + 9 = 13; image 1: 4 x 1 = 4.
    close(value(gaussianNllPerImage(a, b)), (0.5 * 13 + 0.5 * 4) / 2);
    tf.dispose([a, b]);
  });

  it('bceWithLogits equals -log(sigmoid) for real and -log(1 - sigmoid) for fake, also far out', () => {
    const logits = tf.tensor1d([0, 2, -3, 80]);
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    const real = [0, 2, -3].map((x) => -Math.log(sig(x)));
    const fake = [0, 2, -3].map((x) => -Math.log(1 - sig(x)));
    // For 80 the naive forms overflow; the stable ones give ~0 (real) and ~80 (fake).
    close(value(bceWithLogits(logits, 1)), (real.reduce((a, b) => a + b) + 0) / 4, 1e-5);
    close(value(bceWithLogits(logits, 0)), (fake.reduce((a, b) => a + b) + 80) / 4, 1e-5);
    logits.dispose();
  });
});

describe('Gumbel-softmax', () => {
  it('is softmax((logits + g) / t) with g = -log(-log(u))', () => {
    const logitsData = [
      [1, 0.5, -1],
      [0, 0, 2],
    ];
    const uData = [
      [0.2, 0.7, 0.5],
      [0.9, 0.1, 0.4],
    ];
    const logits = tf.tensor2d(logitsData);
    const u = tf.tensor2d(uData);
    const t = 0.5;
    const out = gumbelSoftmax(logits, u, t).arraySync();
    for (let r = 0; r < 2; r++) {
      const z = logitsData[r].map((l, k) => (l - Math.log(-Math.log(uData[r][k]))) / t);
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, b) => a + b);
      e.forEach((v, k) => close(out[r][k], v / sum, 1e-4));
    }
    tf.dispose([logits, u]);
  });

  it('anneals the temperature in stages down to the floor', () => {
    close(annealedTemperature(0, 0.5, 0.01, 100, 0.1), 0.5);
    close(annealedTemperature(99, 0.5, 0.01, 100, 0.1), 0.5);
    close(annealedTemperature(150, 0.5, 0.01, 100, 0.1), 0.5 * Math.exp(-1));
    close(annealedTemperature(10_000, 0.5, 0.01, 100, 0.1), 0.1);
  });
});

describe('capacity', () => {
  it('rises linearly then holds, and the loss is gamma * |KL - C|', () => {
    close(linearCapacity(0, 0, 25, 100), 0);
    close(linearCapacity(40, 0, 25, 100), 10);
    close(linearCapacity(500, 0, 25, 100), 25);
    close(linearCapacity(50, 5, 15, 100), 10);
    const kl = tf.scalar(3);
    close(value(capacityLoss(kl, 10, 2)), 14);
    kl.dispose();
  });
});
