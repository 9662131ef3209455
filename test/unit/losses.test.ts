// The loss terms against independent references: SSIM and MS-SSIM against a Float64 loop with a
// full 2-D window, the KL, reconstruction, GAN, Gumbel-softmax and capacity terms against closed
// forms, and several objectives' gradients from one recorded forward pass. One process for all, as
// a process costs about a second to start: each describe block below sets the TF.js backend it
// computes on (wasm) in its own before().
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { gaussianBlur, gaussianWindow, MS_SSIM_WEIGHTS, msSsim, ssim } from '../../src/losses/ssim.ts';
import { capacityLoss, linearCapacity } from '../../src/losses/capacity.ts';
import { bceWithLogits } from '../../src/losses/gan.ts';
import { annealedTemperature, gumbelSoftmax } from '../../src/losses/gumbel.ts';
import { categoricalKl, gaussianKl, gaussianKlPerSample } from '../../src/losses/kl.ts';
import { gaussianNllPerImage, meanAbsoluteError, mse } from '../../src/losses/reconstruction.ts';
import { type ObjectiveGradients, objectiveGradientWalk, ObjectiveGradsError, runToEnd } from '../../src/train/objective-grads.ts';

describe('losses-ssim: SSIM and MS-SSIM against a Float64 reference', () => {
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
});

describe('losses-terms: KL, reconstruction, GAN, Gumbel-softmax and capacity terms', () => {
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

    it('meanAbsoluteError is the mean of absolute differences', () => {
      const a = tf.tensor1d([1, 2, 3, 4]);
      const b = tf.tensor1d([1, 0, 3, 1.5]);
      close(value(meanAbsoluteError(a, b)), (0 + 2 + 0 + 2.5) / 4);
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
});

describe('train-objective-grads: several objectives differentiated from one recorded forward pass', () => {
  // Several objectives differentiated from one recorded forward pass, checked against hand-computed
  // gradients; the recording is released (no tensors left behind) on success and on failure.

  /** The walk run to the end: the gradients of every objective at once. */
  function objectiveGradients<T extends tf.TensorContainerObject & { objectives: Record<string, tf.Scalar> }>(
    forward: () => T,
    variables: Record<string, readonly tf.Variable[]>,
  ): ObjectiveGradients<T> {
    return runToEnd(objectiveGradientWalk(forward, variables));
  }

  before(async () => {
    await initBackend('wasm');
  });

  describe('objectiveGradientWalk', () => {
    it('gives each objective the gradient w.r.t. its own variables only, from one forward pass', () => {
      const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'og/a');
      const b = tf.variable(tf.tensor1d([4, 5, 6]), true, 'og/b');
      const c = tf.variable(tf.tensor1d([7]), true, 'og/c');
      const before = tf.memory().numTensors;
      let forwardRuns = 0;
      const { outputs, grads } = objectiveGradients(
        () => {
          forwardRuns++;
          const u = tf.mul(a, b);
          // f1 = sum((ab)^2): d/da = 2ab^2. f2 = sum(ab + b): d/db = a + 1, and a's path through u is not b's business.
          return {
            objectives: {
              first: tf.sum(tf.square(u)) as tf.Scalar,
              second: tf.sum(tf.add(u, b)) as tf.Scalar,
              third: tf.sum(u) as tf.Scalar,
            },
          };
        },
        { first: [a], second: [b], third: [c] },
      );
      assert.equal(forwardRuns, 1);
      assert.deepEqual(Array.from(grads['first']![0]!.dataSync()), [2 * 1 * 16, 2 * 2 * 25, 2 * 3 * 36]);
      assert.deepEqual(Array.from(grads['second']![0]!.dataSync()), [2, 3, 4]);
      assert.deepEqual(Array.from(grads['third']![0]!.dataSync()), [0], 'an objective that does not reach a variable gives it zeros');
      assert.equal(outputs.objectives.first.dataSync()[0], 16 + 100 + 324);
      tf.dispose([outputs, grads['first']!, grads['second']!, grads['third']!]);
      assert.equal(tf.memory().numTensors, before, 'the recorded pass holds nothing once the results are disposed');
      tf.dispose([a, b, c]);
    });

    it('names a missing objective, and leaves no tensors behind when the forward pass or a walk fails', () => {
      const a = tf.variable(tf.tensor1d([1, 2]), true, 'og/fail');
      const before = tf.memory().numTensors;
      assert.throws(
        () => objectiveGradients(() => ({ objectives: { loss: tf.sum(tf.square(a)) as tf.Scalar } }), { loss: [a], critic: [a] }),
        (e: unknown) => e instanceof ObjectiveGradsError && /no objective 'critic' \(got loss\)/.test(e.message),
      );
      assert.equal(tf.memory().numTensors, before);
      assert.throws(
        () =>
          objectiveGradients(
            () => {
              tf.square(a);
              throw new Error('forward failed');
            },
            { loss: [a] },
          ),
        /forward failed/,
      );
      assert.equal(tf.memory().numTensors, before);
      // The engine is usable afterwards: the tape was handed back.
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(a, a)) as tf.Scalar, [a]);
      assert.deepEqual(Array.from(grads[a.name]!.dataSync()), [2, 4]);
      tf.dispose([value, grads, a]);
    });

    it('hands each gradient over as soon as the walk is past its first use, last layer first, and frees everything when stopped early', () => {
      const a = tf.variable(tf.tensor1d([1, 2]), true, 'og/layer0');
      const b = tf.variable(tf.tensor1d([3, 4]), true, 'og/layer1');
      const c = tf.variable(tf.tensor1d([5, 6]), true, 'og/layer2');
      const x = tf.tensor1d([0.5, -1]);
      // Three "layers" in tape order a, b, c: y = sum(((x a) b) c).
      const forward = () => ({ objectives: { loss: tf.sum(tf.mul(tf.mul(tf.mul(x, a), b), c)) as tf.Scalar } });
      const before = tf.memory().numTensors;
      const handed: { name: string; afterYields: number; values: number[] }[] = [];
      let yields = 0;
      const walk = objectiveGradientWalk(forward, { loss: [a, b, c] }, (objective, index, grad) => {
        assert.equal(objective, 'loss');
        handed.push({ name: ['a', 'b', 'c'][index]!, afterYields: yields, values: Array.from(grad.dataSync()) });
      });
      let next = walk.next();
      for (; !next.done; next = walk.next()) yields++;
      const { outputs, grads } = next.value;
      assert.deepEqual(
        handed.map((h) => h.name),
        ['c', 'b', 'a'],
      );
      assert.ok(handed[0]!.afterYields < handed[2]!.afterYields, `c before the walk reached a: ${JSON.stringify(handed)}`);
      assert.ok(handed[2]!.afterYields < yields, 'a before the walk ended');
      // d/da = x b c, d/db = x a c, d/dc = x a b; what was handed over is what the walk returns.
      assert.deepEqual(handed[2]!.values, [0.5 * 3 * 5, -1 * 4 * 6]);
      assert.deepEqual(handed[1]!.values, [0.5 * 1 * 5, -1 * 2 * 6]);
      assert.deepEqual(handed[0]!.values, [0.5 * 1 * 3, -1 * 2 * 4]);
      handed.forEach((h, k) => assert.deepEqual(Array.from(grads['loss']![2 - k]!.dataSync()), h.values));
      tf.dispose([outputs, grads['loss']!]);
      assert.equal(tf.memory().numTensors, before);

      const stopped = objectiveGradientWalk(forward, { loss: [a, b, c] });
      stopped.next();
      stopped.return(undefined as never);
      assert.equal(tf.memory().numTensors, before, 'a walk stopped after its first kernel holds nothing');
      tf.dispose([a, b, c, x]);
    });
  });
});
