// The numbers `medvae eval` computes, against hand-computed values, published tables and
// independent float64 loops: PSD square roots, Fréchet and kernel distances, rank AUC, Student-t
// spreads and intervals, k-NN precision and recall, privacy distances and the membership AUROC,
// SSIM and MS-SSIM on valid windows; and docs/results.md's tables and checks built from eval.json
// files. One process for all, as a process costs about a second to start: each describe block below
// sets the TF.js backend it computes on in its own before() and keeps its state to itself.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LinalgError, matMul, sqrtPsd, squareMatrix, symmetricEigen } from '../../src/eval/linalg.ts';
import { frechetDistance, gaussianStats } from '../../src/eval/frechet.ts';
import { kernelDistance, mmdUnbiased } from '../../src/eval/kid.ts';
import { binaryAuc, macroAuc } from '../../src/eval/auc.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { pairedTInterval, spread, studentTCdf, studentTQuantile } from '../../src/eval/stats.ts';
import { kNearestRadii, precisionRecall } from '../../src/eval/precision-recall.ts';
import { tf } from '../../src/util/tf.ts';
import { chanceHalfWidth, membershipScore } from '../../src/eval/membership.ts';
import {
  closestPairs,
  compareDistances,
  nearestRows,
  percentile,
  rmsDistances,
  type SamplePrivacy,
  shareCloser,
} from '../../src/eval/privacy.ts';
import { initBackend } from '../../src/backend/index.ts';
import { evalMsSsim, evalSsim, msSsimLevels, msSsimWeights } from '../../src/eval/ssim.ts';
import { MS_SSIM_WEIGHTS, ssim as paddedSsim, SsimInputError } from '../../src/losses/ssim.ts';
import { EVAL_FILE_VERSION, type EvalFile, readEvalFile, writeEvalFile } from '../../src/eval/eval-file.ts';
import type { EvalMetrics, PosteriorSampleNumbers } from '../../src/eval/evaluate.ts';
import type { TstrMetrics, UtilitySpread } from '../../src/eval/utility.ts';
import { resultRow, type ResultRow, type Sampler } from '../../bench/results-rows.ts';
import { checks, comparisonTable, mainTable, privacyTable, sampleTable, utilityTable } from '../../bench/results-page.ts';
import { tempDir } from '../helpers/temp-dir.ts';

function assertClose(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected} (tol ${tol})`);
}

describe('eval-math: PSD square root, Frechet and kernel distances, rank AUC', () => {
  // The eval statistics against hand-computed values: PSD square root, Frechet distance, kernel
  // distance, rank AUC with ties.

  /** Box-Muller standard normals from a seeded generator. */
  function normals(random: () => number): () => number {
    return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  }

  /** n rows of N(mean, L L^T) in 2-D. */
  function gaussianRows(n: number, mean: [number, number], chol: [[number, number], [number, number]], seed: number): Float64Array {
    const z = normals(mulberry32(seed));
    const rows = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const a = z();
      const b = z();
      rows[i * 2] = mean[0] + chol[0][0] * a + chol[0][1] * b;
      rows[i * 2 + 1] = mean[1] + chol[1][0] * a + chol[1][1] * b;
    }
    return rows;
  }

  test('sqrtPsd of a diagonal matrix is the elementwise root', () => {
    const r = sqrtPsd(
      squareMatrix(3, [
        [4, 0, 0],
        [0, 9, 0],
        [0, 0, 0],
      ]),
    );
    assert.deepEqual(
      Array.from(r.data, (v) => Math.round(v * 1e12) / 1e12),
      [2, 0, 0, 0, 3, 0, 0, 0, 0],
    );
  });

  test('sqrtPsd of [[2,1],[1,2]] matches the hand-computed root', () => {
    // Eigenvalues 3 and 1 with eigenvectors (1,1)/sqrt2, (1,-1)/sqrt2.
    const r = sqrtPsd(
      squareMatrix(2, [
        [2, 1],
        [1, 2],
      ]),
    );
    const diag = (Math.sqrt(3) + 1) / 2;
    const off = (Math.sqrt(3) - 1) / 2;
    [diag, off, off, diag].forEach((v, i) => assertClose(r.data[i], v, 1e-12, `entry ${i}`));
  });

  test('sqrtPsd of a rotated diag(9, 4) is the rotated diag(3, 2), and squares back', () => {
    const t = Math.PI / 6;
    const rot = squareMatrix(2, [
      [Math.cos(t), -Math.sin(t)],
      [Math.sin(t), Math.cos(t)],
    ]);
    const rotT = squareMatrix(2, [
      [Math.cos(t), Math.sin(t)],
      [-Math.sin(t), Math.cos(t)],
    ]);
    const a = matMul(
      matMul(
        rot,
        squareMatrix(2, [
          [9, 0],
          [0, 4],
        ]),
      ),
      rotT,
    );
    const expected = matMul(
      matMul(
        rot,
        squareMatrix(2, [
          [3, 0],
          [0, 2],
        ]),
      ),
      rotT,
    );
    const r = sqrtPsd(a);
    expected.data.forEach((v, i) => assertClose(r.data[i], v, 1e-12, `root entry ${i}`));
    const back = matMul(r, r);
    a.data.forEach((v, i) => assertClose(back.data[i], v, 1e-11, `square entry ${i}`));
  });

  test('symmetricEigen recovers the eigenvalues of a 4x4 matrix (sum = trace, product = det)', () => {
    const m = squareMatrix(4, [
      [4, 1, 0, 2],
      [1, 3, 1, 0],
      [0, 1, 2, 1],
      [2, 0, 1, 5],
    ]);
    const { values, vectors } = symmetricEigen(m);
    assertClose(
      values.reduce((s, v) => s + v, 0),
      14,
      1e-10,
      'trace',
    );
    // det by cofactor expansion along row 0: 4*22 - 1*11 + 0 - 2*11 = 55.
    assertClose(
      values.reduce((p, v) => p * v, 1),
      55,
      1e-9,
      'determinant',
    );
    // A v = lambda v for each column.
    for (let c = 0; c < 4; c++) {
      for (let i = 0; i < 4; i++) {
        let av = 0;
        for (let k = 0; k < 4; k++) av += m.data[i * 4 + k] * vectors.data[k * 4 + c];
        assertClose(av, values[c] * vectors.data[i * 4 + c], 1e-10, `A v[${c}] row ${i}`);
      }
    }
  });

  test('sqrtPsd rejects a matrix with a clearly negative eigenvalue', () => {
    assert.throws(
      () =>
        sqrtPsd(
          squareMatrix(2, [
            [1, 0],
            [0, -1],
          ]),
        ),
      LinalgError,
    );
  });

  test('Frechet distance: identical distributions give 0, diagonal and commuting cases match hand values', () => {
    const c = squareMatrix(2, [
      [2, 1],
      [1, 2],
    ]);
    const mean = Float64Array.from([1, -1]);
    assertClose(frechetDistance({ mean, cov: c }, { mean, cov: c }), 0, 1e-10, 'identical');
    // Diagonal: |dmu|^2 + sum (sqrt a - sqrt b)^2 = 1 + (2-1)^2 + (3-1)^2.
    const fdDiag = frechetDistance(
      {
        mean: Float64Array.from([0, 0]),
        cov: squareMatrix(2, [
          [4, 0],
          [0, 9],
        ]),
      },
      {
        mean: Float64Array.from([1, 0]),
        cov: squareMatrix(2, [
          [1, 0],
          [0, 1],
        ]),
      },
    );
    assertClose(fdDiag, 6, 1e-10, 'diagonal');
    // C2 = 4 C1 with C1 eigenvalues 3, 1: (sqrt3 - 2 sqrt3)^2 + (1 - 2)^2 = 4.
    const fdScaled = frechetDistance(
      { mean, cov: c },
      {
        mean,
        cov: squareMatrix(2, [
          [8, 4],
          [4, 8],
        ]),
      },
    );
    assertClose(fdScaled, 4, 1e-10, 'commuting');
    // diag(4, 1) vs the same rotated by 90 degrees, diag(1, 4): (2-1)^2 + (1-2)^2 = 2.
    const fdRot = frechetDistance(
      {
        mean: Float64Array.from([0, 0]),
        cov: squareMatrix(2, [
          [4, 0],
          [0, 1],
        ]),
      },
      {
        mean: Float64Array.from([0, 0]),
        cov: squareMatrix(2, [
          [1, 0],
          [0, 4],
        ]),
      },
    );
    assertClose(fdRot, 2, 1e-10, 'rotation-similar');
  });

  test('Frechet distance of two non-commuting 2-D Gaussians estimated from samples matches the closed form', () => {
    // Closed form for 2x2: Tr sqrt(C1^1/2 C2 C1^1/2) = sqrt(Tr(C1 C2) + 2 sqrt(det C1 det C2)).
    const l1: [[number, number], [number, number]] = [
      [1, 0],
      [0.5, 1],
    ];
    const l2: [[number, number], [number, number]] = [
      [2, 0],
      [-0.6, 0.8],
    ];
    const cov = (l: [[number, number], [number, number]]): number[][] => [
      [l[0][0] ** 2 + l[0][1] ** 2, l[0][0] * l[1][0] + l[0][1] * l[1][1]],
      [l[0][0] * l[1][0] + l[0][1] * l[1][1], l[1][0] ** 2 + l[1][1] ** 2],
    ];
    const c1 = cov(l1);
    const c2 = cov(l2);
    const trProd = c1[0][0] * c2[0][0] + c1[0][1] * c2[1][0] + c1[1][0] * c2[0][1] + c1[1][1] * c2[1][1];
    const det = (c: number[][]): number => c[0][0] * c[1][1] - c[0][1] * c[1][0];
    const exact =
      (1 - 0) ** 2 + (2 - 0) ** 2 + c1[0][0] + c1[1][1] + c2[0][0] + c2[1][1] - 2 * Math.sqrt(trProd + 2 * Math.sqrt(det(c1) * det(c2)));
    const exactFromMatrices = frechetDistance(
      { mean: Float64Array.from([0, 0]), cov: squareMatrix(2, c1) },
      { mean: Float64Array.from([1, 2]), cov: squareMatrix(2, c2) },
    );
    assertClose(exactFromMatrices, exact, 1e-10, 'matrix formula vs closed form');
    const n = 20000;
    const a = gaussianStats(gaussianRows(n, [0, 0], l1, 11), n, 2);
    const b = gaussianStats(gaussianRows(n, [1, 2], l2, 12), n, 2);
    assertClose(frechetDistance(a, b), exact, 0.05 * exact, 'sampled');
  });

  test('kernel distance: unbiased MMD^2 matches a direct computation, ~0 for one distribution, > 0 when shifted', () => {
    // Direct: 1-D rows x = {0, 1}, y = {1, 2}; k(u, v) = (uv + 1)^3.
    const k = (u: number, v: number): number => (u * v + 1) ** 3;
    const direct = (2 * k(0, 1) + 2 * k(1, 2)) / 2 - (2 * (k(0, 1) + k(0, 2) + k(1, 1) + k(1, 2))) / 4;
    assertClose(mmdUnbiased(Float64Array.from([0, 1]), [0, 1], Float64Array.from([1, 2]), [0, 1], 1), direct, 1e-12, 'direct');

    const d = 8;
    const n = 400;
    const draw = (seed: number, shift: number): Float64Array => {
      const z = normals(mulberry32(seed));
      return Float64Array.from({ length: n * d }, () => z() + shift);
    };
    const same = kernelDistance(draw(1, 0), n, draw(2, 0), n, d, { seed: 3, subsets: 10, subsetSize: 100 });
    const shifted = kernelDistance(draw(1, 0), n, draw(2, 0.5), n, d, { seed: 3, subsets: 10, subsetSize: 100 });
    assert.ok(same.std_error !== null && shifted.std_error !== null, 'subsets of 100 out of 400 differ: an error bar');
    assert.ok(Math.abs(same.mean) < 3 * same.std_error + 1e-3, `same distribution: ${same.mean} +- ${same.std_error}`);
    assert.ok(shifted.mean > 5 * shifted.std_error && shifted.mean > 0.1, `shifted: ${shifted.mean} +- ${shifted.std_error}`);
    assert.equal(same.subsets, 10);
    assert.equal(same.subset_size, 100);
  });

  test('kernel distance with no more rows than the subset size: once over all rows, no error bar', () => {
    const d = 4;
    const rows = (n: number, seed: number, shift: number): Float64Array => {
      const z = normals(mulberry32(seed));
      return Float64Array.from({ length: n * d }, () => z() + shift);
    };
    const x = rows(60, 1, 0);
    const y = rows(60, 2, 0.3);
    const all = Array.from({ length: 60 }, (_, i) => i);
    const once = kernelDistance(x, 60, y, 60, d, { seed: 3, subsets: 10, subsetSize: 100 });
    assert.deepEqual(once, { mean: mmdUnbiased(x, all, y, all, d), std_error: null, subsets: 1, subset_size: 60 });
    // Exactly the subset size on both sides: the same.
    assert.equal(kernelDistance(x, 60, y, 60, d, { seed: 3, subsets: 10, subsetSize: 60 }).std_error, null);
    // A larger generated set: its subsets differ, so there is a spread to report.
    const spread = kernelDistance(x, 60, rows(90, 4, 0.3), 90, d, { seed: 3, subsets: 10, subsetSize: 100 });
    assert.equal(spread.subsets, 10);
    assert.equal(spread.subset_size, 60);
    assert.ok(spread.std_error !== null && spread.std_error > 0, `std error ${spread.std_error}`);
  });

  test('binary AUC by ranks handles ties as one half', () => {
    // Perfect and inverted separation.
    assert.equal(binaryAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]), 1);
    assert.equal(binaryAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]), 0);
    // All tied: 0.5.
    assert.equal(binaryAuc([0.5, 0.5, 0.5, 0.5], [true, false, true, false]), 0.5);
    // pos {0.8, 0.4}, neg {0.4, 0.2, 0.1}: pairs (0.8 beats 3) + (0.4: tie 0.5 + beats 2) = 5.5 of 6.
    assertClose(binaryAuc([0.8, 0.4, 0.4, 0.2, 0.1], [true, true, false, false, false]), 5.5 / 6, 1e-12, 'ties');
    assert.ok(Number.isNaN(binaryAuc([0.1, 0.2], [true, true])));
  });

  test('macro AUC averages one-vs-rest columns and skips classes absent from the targets', () => {
    // 3 classes, 4 samples; class 2 never occurs.
    const targets = Float64Array.from([1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0]);
    const scores = Float64Array.from([0.7, 0.2, 0.1, 0.3, 0.6, 0.1, 0.3, 0.3, 0.4, 0.5, 0.5, 0.0]);
    // Column 0: pos {0.7, 0.3}, neg {0.3, 0.5} -> (1 + 1) + (0.5 + 0) = 2.5 / 4.
    // Column 1: pos {0.6, 0.5}, neg {0.2, 0.3} -> 4 / 4.
    assertClose(macroAuc(scores, targets, 4, 3), (2.5 / 4 + 1) / 2, 1e-12, 'macro');
  });
});

describe('eval-stats: spread over seeds and the paired Student-t interval', () => {
  // Spread over seeds and the paired Student-t interval, against hand-computed values and published
  // t quantiles (two-sided 95%: 12.7062 at 1 degree of freedom, 2.7764 at 4, 2.2622 at 9, 2.0423 at 30).

  test('spread: mean and sample standard deviation', () => {
    // Mean 5; squared deviations 9, 1, 1, 9 sum to 20; 20 / 3.
    const s = spread([2, 4, 6, 8]);
    assertClose(s.mean, 5, 1e-15, 'mean');
    assertClose(s.std, Math.sqrt(20 / 3), 1e-15, 'std');
    assert.deepEqual(spread([3]), { mean: 3, std: 0, values: [3] });
  });

  test('Student-t quantiles and CDF match published tables', () => {
    assertClose(studentTQuantile(0.975, 1), 12.706204736, 1e-6, 'df 1');
    assertClose(studentTQuantile(0.975, 4), 2.776445105, 1e-8, 'df 4');
    assertClose(studentTQuantile(0.975, 9), 2.262157163, 1e-8, 'df 9');
    assertClose(studentTQuantile(0.975, 30), 2.042272456, 1e-8, 'df 30');
    assertClose(studentTQuantile(0.025, 4), -2.776445105, 1e-8, 'lower tail');
    // df 1 is the Cauchy distribution: P(T <= 1) = 1/2 + atan(1) / pi = 3/4.
    assertClose(studentTCdf(1, 1), 0.75, 1e-12, 'Cauchy');
    assertClose(studentTCdf(0, 7), 0.5, 1e-15, 'median');
  });

  test('paired t interval of a hand-computed case', () => {
    // Differences 0.05, 0.02, 0.01, 0.05, 0.03: mean 0.032, squared deviations sum 12.8e-4, variance 3.2e-4,
    // standard error sqrt(3.2e-4 / 5) = 0.008, half-width 2.776445 * 0.008 = 0.0222116.
    const i = pairedTInterval([0.6, 0.62, 0.58, 0.65, 0.61], [0.55, 0.6, 0.57, 0.6, 0.58]);
    assertClose(i.mean, 0.032, 1e-12, 'mean');
    assertClose(i.low, 0.032 - 0.0222116, 1e-7, 'low');
    assertClose(i.high, 0.032 + 0.0222116, 1e-7, 'high');
    assert.equal(i.level, 0.95);
    assert.throws(() => pairedTInterval([1], [2]), /equal length >= 2, got 1 and 1/);
  });
});

describe('eval-precision-recall: k-NN manifolds counted by hand', () => {
  // Precision and recall of k-NN manifolds on 2-D points whose balls can be counted by hand.

  // Real: the corners of a 2 x 2 square. Each corner's other points lie at 2, 2 and 2 sqrt 2, so its
  // ball has radius 2 for k = 1 and k = 2, and 2 sqrt 2 for k = 3.
  const REAL = [0, 0, 2, 0, 0, 2, 2, 2];
  // Generated: two points inside the square, one 2.5 right of corner (2, 0), one far away at (9, 0).
  const GENERATED = [1, 1, 1, 0.5, 4.5, 0, 9, 0];

  test('k-NN radii are the distance to the k-th nearest other point', () => {
    assert.deepEqual([...kNearestRadii(REAL, 4, 2, 1)], [2, 2, 2, 2]);
    assert.deepEqual([...kNearestRadii(REAL, 4, 2, 3)], [2 * Math.SQRT2, 2 * Math.SQRT2, 2 * Math.SQRT2, 2 * Math.SQRT2]);
    // Generated pairwise: g0-g1 0.5, g1-g2 sqrt(12.5), g0-g2 sqrt(13.25), g2-g3 4.5, g1-g3 sqrt(64.25), g0-g3 sqrt(65).
    const r = kNearestRadii(GENERATED, 4, 2, 1);
    assert.deepEqual([...r], [0.5, 0.5, Math.sqrt(12.5), 4.5]);
    assert.throws(() => kNearestRadii(REAL, 4, 2, 4), /1 <= k < n points, got k 4 and 4 points/);
  });

  test('precision and recall count the points inside the balls of the other set', () => {
    // k = 1: (1, 1) and (1, 0.5) lie within 2 of a corner, (4.5, 0) is 2.5 from (2, 0), (9, 0) 7: precision 2/4.
    // Recall: (2, 0) is 2.5 <= sqrt(12.5) from (4.5, 0), (2, 2) is sqrt(10.25) <= sqrt(12.5) from it;
    // (0, 0) and (0, 2) are farther than every generated ball (1.12 and 1.41 from the 0.5-balls): 2/4.
    assert.deepEqual(precisionRecall(REAL, 4, GENERATED, 4, 2, 1), { k: 1, precision: 0.5, recall: 0.5 });
    // k = 3: corner balls of 2 sqrt 2 = 2.83 now hold (4.5, 0) too; generated balls of >= 4.5 hold every corner.
    assert.deepEqual(precisionRecall(REAL, 4, GENERATED, 4, 2, 3), { k: 3, precision: 0.75, recall: 1 });
  });

  test('a set against itself has precision and recall 1', () => {
    assert.deepEqual(precisionRecall(GENERATED, 4, GENERATED, 4, 2), { k: 3, precision: 1, recall: 1 });
  });
});

describe('eval-privacy: closest training images, percentiles and membership', () => {
  // Closest training images, percentiles and the membership AUROC on numbers small enough to check by hand.

  // Its own process computed on TF.js's default backend, cpu (nothing loaded wasm there).
  before(async () => {
    await tf.setBackend('cpu');
  });

  test('nearest rows: distance to and index of the closest reference point, across chunks, leaking no tensor', async () => {
    // Reference points (0, 0), (3, 0), (0, 4), (10, 10); queries (1, 0) -> (0, 0) at 1, (3, 4) -> (0, 4) at 3
    // (not (3, 0) at 4), (9, 9) -> (10, 10) at sqrt 2, (0, 0) -> itself at 0.
    const reference = Float32Array.from([0, 0, 3, 0, 0, 4, 10, 10]);
    const queries = Float32Array.from([1, 0, 3, 4, 9, 9, 0, 0]);
    const before = tf.memory().numTensors;
    for (const chunk of [1, 2, 512]) {
      const nearest = await nearestRows(queries, 4, reference, 4, 2, chunk);
      assert.deepEqual([...nearest.index], [0, 2, 3, 0], `indices, chunk ${chunk}`);
      [1, 3, Math.SQRT2, 0].forEach((want, i) => assertClose(nearest.distance[i], want, 1e-5, `distance ${i}, chunk ${chunk}`));
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    // 2 values per row: RMS = Euclidean / sqrt 2.
    assertClose(rmsDistances({ distance: Float64Array.from([2]), index: Int32Array.from([0]) }, 2).distance[0], Math.SQRT2, 1e-12, 'rms');
  });

  test('percentiles interpolate between order statistics as numpy does', () => {
    // Rank p/100 * (n - 1): 1st percentile of 1..5 is 1 + 0.04 (1 + 0.04 * 1).
    assertClose(percentile([5, 1, 4, 2, 3], 1), 1.04, 1e-12, 'p1');
    assertClose(percentile([5, 1, 4, 2, 3], 50), 3, 1e-12, 'median');
    assertClose(percentile([5, 1, 4, 2, 3], 100), 5, 1e-12, 'p100');
    assertClose(percentile([0, 10], 25), 2.5, 1e-12, 'between two');
  });

  test('samples are read against the held-out percentiles of the distance to the closest training image', () => {
    // Held-out distances 0, 1, ..., 100: p1 = 1, p5 = 5, p99 = 99, median 50.
    const heldOut = Array.from({ length: 101 }, (_, i) => i);
    // Two copies (0.5 < p1), one at 3 (< p5 only), one at 1 exactly (not strictly below p1), three far off (> 99).
    const samples = [0.5, 0.5, 3, 1, 120, 150, 200, 50, 60, 70];
    const c = compareDistances(samples, heldOut);
    assertClose(c.heldout_p1, 1, 1e-12, 'p1');
    assertClose(c.heldout_p5, 5, 1e-12, 'p5');
    assertClose(c.heldout_p99, 99, 1e-12, 'p99');
    assertClose(c.heldout_median, 50, 1e-12, 'median');
    assertClose(c.share_below_heldout_p1, 2 / 10, 1e-12, 'below p1');
    assertClose(c.share_below_heldout_p5, 4 / 10, 1e-12, 'below p5');
    assertClose(c.share_above_heldout_p99, 3 / 10, 1e-12, 'above p99');
    assertClose(c.sample_min, 0.5, 1e-12, 'min');
    // Sorted: 0.5 0.5 1 3 50 60 70 120 150 200: the median is between 50 and 60.
    assertClose(c.sample_median, 55, 1e-12, 'sample median');
  });

  test('closest pairs: the samples nearest a training image, closest first, ties by sample index', () => {
    const pairs = closestPairs({ distance: Float64Array.from([0.3, 0.1, 0.3, 0.05]), index: Int32Array.from([7, 8, 9, 10]) }, 3);
    assert.deepEqual(pairs, [
      { sample: 3, train: 10, pixel_distance: 0.05 },
      { sample: 1, train: 8, pixel_distance: 0.1 },
      { sample: 0, train: 7, pixel_distance: 0.3 },
    ]);
  });

  test('membership AUROC: the share of (training, held-out) pairs where the held-out image scores worse', () => {
    // Held-out 2.5 beats training 1 and 2, not 3; held-out 4 beats all three: 5 of 6 pairs.
    const m = membershipScore([1, 2, 3], [2.5, 4]);
    assertClose(m.auroc, 5 / 6, 1e-12, 'auroc');
    assertClose(m.train_mean, 2, 1e-12, 'train mean');
    assertClose(m.heldout_mean, 3.25, 1e-12, 'held-out mean');
    // Alike scores: one half.
    assertClose(membershipScore([1, 1], [1, 1]).auroc, 0.5, 1e-12, 'ties');
    // 400 vs 400: 1.96 sqrt(801 / (12 * 160000)) = 0.0400327.
    assertClose(chanceHalfWidth(400, 400), 0.0400327, 1e-6, 'chance half-width');
  });

  test('share closer to training: strictly closer counts 1, a tie one half', () => {
    // 1 < 2 counts, 3 = 3 counts one half, 5 > 4 does not: 1.5 of 3.
    assertClose(shareCloser([1, 3, 5], [2, 3, 4]), 0.5, 1e-12, 'share');
    assert.throws(() => shareCloser([1], [1, 2]), /equal non-empty lists, got 1 and 2/);
  });
});

describe('eval-ssim: SSIM and MS-SSIM on valid windows', () => {
  // Eval SSIM and MS-SSIM on valid windows against a straightforward float64 double loop written
  // here (every window wholly inside the image, pytorch_msssim's pooling and clamping), against a
  // value from skimage's algorithm run on scipy, and against closed forms.

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
    assertAllClose(
      evaluate(evalMsSsim, new Float32Array(144).fill(a), new Float32Array(144).fill(a), shape),
      [1],
      1e-6,
      'identical ms-ssim',
    );
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
});

describe("results-doc: docs/results.md's tables and checks", () => {
  // docs/results.md's tables and checks (bench/results-page.ts) from bench/results-table.ts's rows
  // (bench/results-rows.ts), fed synthetic eval.json files (format 4) written and read back as
  // `medvae eval` leaves them: every cell and every yes/no against numbers computed by hand.

  // Real vs real, shared by every run (the same held-out and reference images).
  const REF = { frechet: 0.2, kernel: 0.003, precision: 0.9, recall: 0.92, msSsimReal: 0.35 };

  interface Draws {
    frechet: number;
    kernel: number;
    precision: number;
    recall: number;
    diversity: number;
  }

  function sampleNumbers(d: Draws): Pick<EvalMetrics, 'sample_quality' | 'diversity'> {
    const kernel = (mean: number) => ({ mean, std_error: 0.001, subsets: 10, subset_size: 100 });
    return {
      sample_quality: {
        n_real: 400,
        n_generated: 400,
        feature_net: {
          id: 'featnet-v1-test',
          version: 1,
          seed: 0,
          task: 'class',
          dim: 64,
          recipe: { steps: 300, batchSize: 64, lr: 0.002 },
          n_train: 1080,
          heldout_accuracy: 0.5,
        },
        frechet_distance: d.frechet,
        reference_frechet_distance: REF.frechet,
        kernel_distance: kernel(d.kernel),
        reference_kernel_distance: kernel(REF.kernel),
        precision_recall: { k: 3, precision: d.precision, recall: d.recall },
        reference_precision_recall: { k: 3, precision: REF.precision, recall: REF.recall },
      },
      diversity: { pairs: 100, ms_ssim_generated: d.diversity, ms_ssim_real: REF.msSsimReal },
    };
  }

  function privacy(grid: string, p1: [number, number], p5: [number, number], closer: [number, number]): SamplePrivacy {
    const distances = (share_below_heldout_p1: number, share_below_heldout_p5: number) => ({
      sample_median: 0.2,
      heldout_median: 0.2,
      sample_min: 0.07,
      heldout_p1: 0.08,
      heldout_p5: 0.1,
      heldout_p99: 0.9,
      share_below_heldout_p1,
      share_below_heldout_p5,
      share_above_heldout_p99: 0.01,
    });
    return {
      n_samples: 400,
      n_heldout: 400,
      n_train: 1080,
      feature: distances(p1[0], p5[0]),
      pixel: distances(p1[1], p5[1]),
      share_closer_to_train: { feature: closer[0], pixel: closer[1] },
      closest_pairs: [],
      grid,
    };
  }

  /** Spreads and intervals over 5 seeds; only mean, std and the interval are read. */
  function utilitySpread(
    tstr: [number, number],
    trtr: [number, number],
    realOnly: [number, number],
    plus: [number, number],
    tstrMinusTrtr: [number, number, number],
    gain: [number, number, number],
  ): UtilitySpread {
    const s = ([mean, std]: [number, number]) => ({ mean, std, values: [mean, mean, mean, mean, mean] });
    const i = ([mean, low, high]: [number, number, number]) => ({ mean, low, high, level: 0.95 });
    return {
      tstr: s(tstr),
      trtr: s(trtr),
      real_only: s(realOnly),
      real_plus_synthetic: s(plus),
      tstr_minus_trtr: i(tstrMinusTrtr),
      synthetic_gain: i(gain),
    };
  }

  const cvaeUtility: TstrMetrics = {
    label_kind: 'class',
    n_train: 400,
    n_test: 400,
    tstr: { accuracy: 0.45, auc: 0.63 },
    trtr: { accuracy: 0.52, auc: 0.69 },
    majority_accuracy: 0.435,
    conditioning: { accuracy: 0.4, auc: 0.61 },
    augmentation: {
      n_real: 1080,
      n_synthetic: 400,
      real_only: { accuracy: 0.51, auc: 0.7 },
      real_plus_synthetic: { accuracy: 0.53, auc: 0.71 },
    },
    over_seeds: {
      seeds: [0, 1, 2, 3, 4],
      accuracy: utilitySpread([0.46, 0.012], [0.53, 0.01], [0.515, 0.008], [0.532, 0.009], [-0.07, -0.09, -0.05], [0.017, 0.004, 0.03]),
      auc: utilitySpread([0.64, 0.02], [0.7, 0.01], [0.71, 0.01], [0.72, 0.012], [-0.06, -0.08, -0.04], [0.01, -0.005, 0.025]),
    },
  };

  interface Run {
    model: string;
    psnr: number;
    draws: Record<Sampler, Draws>;
    privacy: Record<Sampler, SamplePrivacy | null>;
    membership: [number, number] | null;
    tstr: TstrMetrics | null;
    /** The draws' Fréchet distances to the validation images, which choose the default; null: the data had none, the test images chose. */
    validation: Record<Sampler, number> | null;
    /** The training images' reconstructions (diversity unused); absent: an eval.json from before they were scored. */
    reconstructions?: Draws;
  }

  function evalFile(run: Run): EvalFile {
    const scores = (psnr: number, ssim: number, ms_ssim: number) => ({ mse: 0.01, psnr, ssim, ms_ssim });
    const posterior = (s: Sampler): PosteriorSampleNumbers => ({
      n_fit: 1024,
      ...sampleNumbers(run.draws[s]),
      tstr: run.tstr,
      privacy: run.privacy[s],
    });
    const frechet = { prior: run.draws.prior.frechet, gaussian: run.draws.gaussian.frechet, mixture: run.draws.mixture.frechet };
    const chosenBy = run.validation ?? frechet;
    const best = (Object.keys(chosenBy) as Sampler[]).reduce((a, b) => (chosenBy[b] < chosenBy[a] ? b : a));
    return {
      format: 'medvae-eval',
      version: EVAL_FILE_VERSION,
      run: run.model,
      split: 'test',
      n: 400,
      seed: 0,
      heldout_indices: [],
      model: { name: run.model, image_size: 64, channels: 3, param_count: 1, step: 800, temperature: null },
      metrics: {
        reconstruction: {
          n: 400,
          ...scores(run.psnr, 0.75, 0.77),
          nelbo: -9600,
          recon_nll: -9615,
          kl: 15,
          decoder_sigma: 0.11,
          baselines: { constant_grey: scores(9.5, 0.015, 0.035), train_mean: scores(18.8, 0.53, 0.55) },
        } as EvalMetrics['reconstruction'],
        ...sampleNumbers(run.draws.prior),
        tstr: run.tstr,
        privacy: run.privacy.prior,
        membership: run.membership && {
          n_train: 400,
          n_heldout: 400,
          decoder_sigma: 0.11,
          chance_halfwidth_95: 0.04003,
          neg_elbo: { auroc: run.membership[0], train_mean: 0, heldout_mean: 0 },
          recon_mse: { auroc: run.membership[1], train_mean: 0, heldout_mean: 0 },
        },
        fitted_posterior: posterior('gaussian'),
        mixture_posterior: { ...posterior('mixture'), components: 8 },
        sampler: {
          default: best,
          chosen_on: run.validation ? 'val' : 'test',
          fallback: run.validation ? null : "no validation split 'val'",
          n_chosen_on: run.validation ? 200 : 400,
          frechet_chosen_on: chosenBy,
          frechet,
        },
        ...(run.reconstructions && {
          training_reconstructions: { n: 400, sample_quality: sampleNumbers(run.reconstructions).sample_quality },
        }),
      },
      meta: {
        created_at: '2026-01-01T00:00:00Z',
        seconds: 1,
        backend: 'cpu',
        machine: { os: 'test', cpus: 2, cpu_model: 'test', memory_gb: 1, node: 'v20' },
      },
    };
  }

  const draws = (frechet: number, kernel: number, precision: number, recall: number, diversity: number): Draws => ({
    frechet,
    kernel,
    precision,
    recall,
    diversity,
  });

  const runs: Run[] = [
    {
      // Default: the Gaussian, the lowest on the validation images (0.7 < 1.5 < 6), though on the test
      // images the mixture is (0.9 < 2.2 < 7). Precision 0.81 >= 0.8 * 0.9 = 0.72; Fréchet 2.2 > 5 * 0.2 = 1.
      model: 'vae',
      psnr: 26,
      draws: {
        prior: draws(7, 0.26, 0.6, 0.07, 0.43),
        gaussian: draws(2.2, 0.07, 0.81, 0.09, 0.45),
        mixture: draws(0.9, 0.05, 0.75, 0.2, 0.43),
      },
      privacy: {
        prior: privacy('eval-closest-pairs-prior.png', [0.0025, 0], [0.02, 0], [0.7375, 0.65]),
        gaussian: privacy('eval-closest-pairs-fitted.png', [0.005, 0], [0.0175, 0.0075], [0.6775, 0.5725]),
        mixture: privacy('eval-closest-pairs-mixture.png', [0.005, 0], [0.0225, 0.005], [0.645, 0.55]),
      },
      membership: [0.5208, 0.529],
      tstr: null,
      validation: { prior: 6, gaussian: 0.7, mixture: 1.5 },
      // Its own reconstructions of training images score 1.9 > 1: the decoder alone misses the bound.
      reconstructions: draws(1.9, 0.06, 0.85, 0.12, 0),
    },
    {
      // Default: the Gaussian (validation 0.75; test 0.8). Precision 0.7 < 0.72: no; Fréchet 0.8 <= 1: yes; below the VAE's 2.2: yes.
      // Prior precision 0.4 < 0.5 * 0.9 = 0.45: no. Sample-pair MS-SSIM: prior |0.34 - 0.35| <= 0.1, Gaussian |0.5 - 0.35| > 0.1.
      model: 'vae_gan',
      psnr: 27.5,
      draws: {
        prior: draws(30, 8.4, 0.4, 0.3, 0.34),
        gaussian: draws(0.8, 0.002, 0.7, 0.5, 0.5),
        mixture: draws(1.1, 0.004, 0.72, 0.45, 0.4),
      },
      privacy: {
        prior: privacy('eval-closest-pairs-prior.png', [0.01, 0.02], [0.06, 0.07], [0.5, 0.51]),
        gaussian: privacy('eval-closest-pairs-fitted.png', [0.0125, 0.0025], [0.055, 0.03], [0.52, 0.49]),
        mixture: null,
      },
      membership: [0.55, 0.49],
      tstr: null,
      validation: { prior: 25, gaussian: 0.75, mixture: 1 },
      reconstructions: draws(0.45, 0.001, 0.97, 0.87, 0),
    },
    {
      // No validation split: the test images chose the prior (0.95), and the main table says so. PSNR 19.3 < 18.8 + 1: no. Precision 0.8 >= 0.72, Fréchet 0.95 <= 1: yes.
      // TSTR 0.46 < 0.9 * 0.53 = 0.477: no; AUC 0.64 >= 0.6: yes. Gain [0.004, 0.03] above 0: yes, below: no.
      model: 'cvae',
      psnr: 19.3,
      draws: {
        prior: draws(0.95, 0.01, 0.8, 0.6, 0.36),
        gaussian: draws(1.2, 0.02, 0.85, 0.5, 0.4),
        mixture: draws(1.3, 0.03, 0.86, 0.4, 0.41),
      },
      privacy: { prior: null, gaussian: null, mixture: null },
      membership: null,
      tstr: cvaeUtility,
      validation: null,
    },
  ];

  function rowsFromFiles(): ResultRow[] {
    const root = tempDir('medvae-results-doc-');
    return runs.map((run) => {
      const dir = join(root, run.model);
      mkdirSync(dir);
      writeEvalFile(dir, evalFile(run));
      const evaluation = readEvalFile(dir);
      assert.ok(evaluation);
      const settings = { 'model.kld_weight': '0.000025', 'train.batch_size': '16', 'train.epochs': '50' };
      return resultRow(
        { run: dir, model: run.model, image_size: 64, epochs: 50, batch_size: 16, settings, grid_sampler: 'mixture' },
        evaluation,
      );
    });
  }

  let rows: ResultRow[];
  before(() => {
    rows = rowsFromFiles();
  });
  /** The table's body rows as lists of cells, by their first cell (model and sampler where two share a model). */
  const cells = (table: string[]): string[][] =>
    table.slice(2).map((line) =>
      line
        .slice(2, -2)
        .split(' | ')
        .map((c) => c.trim()),
    );

  test('rows: default sampler numbers, per-sampler privacy and the keys other readers use', () => {
    const [vae, gan, cvae] = rows;
    // The sampler eval.json chose on the validation images, not the lowest on the test images (the mixture's 0.9).
    assert.equal(vae!.default_sampler, 'gaussian');
    assert.equal(gan!.default_sampler, 'gaussian');
    assert.equal(cvae!.default_sampler, 'prior');
    assert.deepEqual(
      rows.map((r) => r.default_sampler_chosen_on),
      ['val', 'val', 'test'],
    );
    // Its numbers on the test images.
    assert.deepEqual(
      [vae!.default_frechet_feature_distance, vae!.default_precision, vae!.default_recall, vae!.mixture_components],
      [2.2, 0.81, 0.09, 8],
    );
    // Format-2 keys keep their meaning: prior draws, fitted_* the Gaussian's.
    assert.deepEqual(
      [vae!.frechet_feature_distance, vae!.precision, vae!.fitted_frechet_feature_distance, vae!.fitted_precision],
      [7, 0.6, 2.2, 0.81],
    );
    assert.deepEqual([vae!.frechet_reference, vae!.precision_reference, vae!.recall_reference], [0.2, 0.9, 0.92]);
    assert.equal(vae!.privacy.mixture!.grid, join(vae!.run, 'eval-closest-pairs-mixture.png'));
    assert.equal(gan!.privacy.mixture, null);
    assert.deepEqual(vae!.membership, {
      n_train: 400,
      n_heldout: 400,
      neg_elbo_auroc: 0.5208,
      recon_mse_auroc: 0.529,
      chance_halfwidth_95: 0.04003,
    });
    assert.equal(cvae!.utility.prior!.seeds, 5);
    assert.deepEqual(cvae!.utility.prior!.accuracy.synthetic_gain, { mean: 0.017, low: 0.004, high: 0.03, level: 0.95 });
    assert.deepEqual([cvae!.tstr_accuracy, cvae!.trtr_accuracy, cvae!.real_plus_synthetic_accuracy], [0.45, 0.52, 0.53]);
  });

  test('main table: reconstruction and the default sampler, then the baselines', () => {
    assert.deepEqual(rows[2]!.training_reconstructions, null);
    assert.deepEqual(cells(mainTable(rows)), [
      ['vae', '50 (800 of 16)', '26', '0.75', '0.77', '-9600', 'gaussian', '2.2', '0.07', '0.81', '0.09', '0.45'],
      ['vae_gan', '50 (800 of 16)', '27.5', '0.75', '0.77', '-9600', 'gaussian', '0.8', '0.002', '0.7', '0.5', '0.5'],
      ['cvae', '50 (800 of 16)', '19.3', '0.75', '0.77', '-9600', 'prior (chosen on test)', '0.95', '0.01', '0.8', '0.6', '0.36'],
      ['*constant grey image*', '', '9.5', '', '', '', '', '', '', '', '', ''],
      ['*training-mean image*', '', '18.8', '0.53', '0.55', '', '', '', '', '', '', ''],
      ['*real vs real*', '', '', '', '', '', '', '0.2', '0.003', '0.9', '0.92', '0.35'],
    ]);
    // A line written before the batch size was recorded.
    const older: ResultRow = { ...rows[0]! };
    delete older.batch_size;
    assert.equal(cells(mainTable([older]))[0]![1], '50 (800)');
  });

  test("sample-quality table: the prior, then the default sampler where it is another, and the training images' reconstructions where scored", () => {
    const LIMIT = "*training images' reconstructions* (the decoder's reference)";
    assert.deepEqual(cells(sampleTable(rows)), [
      ['vae', 'prior', '7', '0.26', '0.6', '0.07', '0.43'],
      ['vae', 'gaussian (default)', '2.2', '0.07', '0.81', '0.09', '0.45'],
      ['vae', LIMIT, '1.9', '0.06', '0.85', '0.12', ''],
      ['vae_gan', 'prior', '30', '8.4', '0.4', '0.3', '0.34'],
      ['vae_gan', 'gaussian (default)', '0.8', '0.002', '0.7', '0.5', '0.5'],
      ['vae_gan', LIMIT, '0.45', '0.001', '0.97', '0.87', ''],
      ['cvae', 'prior (default)', '0.95', '0.01', '0.8', '0.6', '0.36'],
      ['*real vs real*', '', '0.2', '0.003', '0.9', '0.92', '0.35'],
    ]);
  });

  test('comparison table: each model of other runs with other settings above its row here', () => {
    // The earlier VAE: other settings (epochs aside) and an eval.json from before the decoder's reference.
    const earlierVae: ResultRow = {
      ...rows[0]!,
      run: 'earlier/vae',
      steps: 200,
      batch_size: 64,
      settings: { 'model.kld_weight': '0.00025', 'train.batch_size': '64', 'train.epochs': '100' },
      psnr_db: 24,
      default_sampler: 'mixture',
      default_frechet_feature_distance: 4.5,
    };
    delete earlierVae.training_reconstructions;
    // The VAE-GAN: the same settings, and the CVAE the same run, in both: not compared.
    const earlierGan: ResultRow = { ...rows[1]!, run: 'earlier/vae_gan' };
    assert.deepEqual(cells(comparisonTable(rows, [earlierGan, earlierVae, rows[2]!])), [
      ['vae', 'model.kld_weight 0.00025, train.batch_size 64', '50 (200 of 64)', '24', '—', 'mixture', '4.5', '0.81', '0.09'],
      ['vae', 'model.kld_weight 0.000025, train.batch_size 16', '50 (800 of 16)', '26', '1.9', 'gaussian', '2.2', '0.81', '0.09'],
    ]);
    // Several other runs of a model, in the order given, each with the keys in which it differs from this
    // run; this run's row shows its values of all of them.
    const trial: ResultRow = { ...earlierVae, run: 'trials/vae', settings: { ...rows[0]!.settings!, 'train.lr': '0.001' }, psnr_db: 25 };
    assert.deepEqual(
      cells(comparisonTable(rows, [earlierVae, trial])).map((row) => row.slice(0, 4)),
      [
        ['vae', 'model.kld_weight 0.00025, train.batch_size 64', '50 (200 of 64)', '24'],
        ['vae', 'train.lr 0.001', '50 (200 of 64)', '25'],
        ['vae', 'model.kld_weight 0.000025, train.batch_size 16, train.lr (none)', '50 (800 of 16)', '26'],
      ],
    );
    // Lines written before settings were recorded cannot say what differs.
    const unrecorded: ResultRow = { ...earlierVae };
    delete unrecorded.settings;
    assert.deepEqual(comparisonTable(rows, [unrecorded]), []);
    assert.deepEqual(comparisonTable(rows, []), []);
  });

  test("privacy table: the default sampler's draws, and membership; — where eval.json has none", () => {
    assert.deepEqual(cells(privacyTable(rows)), [
      ['vae', 'gaussian', '0.005 / 0', '0.0175 / 0.0075', '0.6775 / 0.5725', '0.5208', '0.529', '0.5 ± 0.04'],
      ['vae_gan', 'gaussian', '0.0125 / 0.0025', '0.055 / 0.03', '0.52 / 0.49', '0.55', '0.49', '0.5 ± 0.04'],
      ['cvae', 'prior', '—', '—', '—', '—', '—', '—'],
      ['*no copying, no membership signal*', '', '0.01 / 0.01', '0.05 / 0.05', '0.5 / 0.5', '0.5', '0.5', ''],
    ]);
  });

  test('utility table: mean ± std over seeds and the paired 95% intervals, conditional models only', () => {
    assert.deepEqual(cells(utilityTable(rows)), [
      [
        'cvae',
        'prior (default)',
        'accuracy',
        '0.46 ± 0.012',
        '0.53 ± 0.01',
        '-0.07 [-0.09, -0.05]',
        '0.515 ± 0.008',
        '0.532 ± 0.009',
        '0.017 [0.004, 0.03]',
      ],
      [
        'cvae',
        'prior (default)',
        'AUC',
        '0.64 ± 0.02',
        '0.7 ± 0.01',
        '-0.06 [-0.08, -0.04]',
        '0.71 ± 0.01',
        '0.72 ± 0.012',
        '0.01 [-0.005, 0.025]',
      ],
      ['*majority class*', '', 'accuracy', '0.435', '0.435', '', '0.435', '0.435', ''],
      ['*chance*', '', 'AUC', '0.5', '0.5', '', '0.5', '0.5', ''],
    ]);
    assert.deepEqual(utilityTable(rows.slice(0, 2)), []);
  });

  test("checks: the issue's must-shows as yes / no from the numbers", () => {
    const lines = checks(rows);
    const answers = (start: string): string[] => {
      const line = lines.find((l) => l.startsWith(`- ${start}`));
      assert.ok(line, `no check line starts with '${start}':\n${lines.join('\n')}`);
      return [...line.matchAll(/: (\*\*no\*\*|\*\*yes\*\*|yes|no)(?=;|$| \()/g)].map((m) => m[1]!);
    };
    assert.deepEqual(answers('vae: PSNR'), ['yes']);
    assert.deepEqual(answers('cvae: PSNR'), ['**no**']);
    assert.deepEqual(answers('vae, default sampler (gaussian): precision'), ['yes', '**no**']);
    assert.deepEqual(answers('vae_gan, default sampler (gaussian): precision'), ['**no**', 'yes']);
    assert.deepEqual(answers('cvae, default sampler (prior): precision'), ['yes', 'yes']);
    assert.deepEqual(answers('vae_gan, prior: precision'), ['**no**']);
    assert.deepEqual(answers('vae_gan, default sampler (gaussian): Fréchet'), ['yes']);
    assert.deepEqual(answers('vae_gan, prior: sample-pair'), ['yes']);
    assert.deepEqual(answers('vae_gan, gaussian (default): sample-pair'), ['**no**']);
    assert.deepEqual(answers('cvae, prior (default): TSTR'), ['**no**', 'yes']);
    assert.deepEqual(answers('cvae, prior (default): real + synthetic'), ['yes', 'no']);
    assert.ok(
      lines.includes(
        "- vae, default sampler (gaussian): precision 0.81 ≥ 0.8 × real vs real's 0.9 = 0.72: yes; Fréchet feature distance 2.2 ≤ 5 × real vs real's 0.2 = 1: **no** (the training images' own reconstructions score 1.9: the decoder alone misses it)",
      ),
    );
    // A decoder whose reconstructions are within the bound puts the miss on the sampler; a pass gets no note.
    const within = { ...rows[0]!, training_reconstructions: { ...rows[0]!.training_reconstructions!, frechet_feature_distance: 0.6 } };
    assert.ok(
      checks([within]).some((l) =>
        l.endsWith("= 1: **no** (the training images' own reconstructions score 0.6: the decoder allows it, the sampler falls short)"),
      ),
    );
    assert.ok(lines.some((l) => l.startsWith('- vae_gan, default sampler (gaussian): precision') && l.endsWith('= 1: yes')));
    assert.ok(
      lines.includes(
        '- cvae, prior (default): real + synthetic accuracy 0.532 ± 0.009 vs real alone 0.515 ± 0.008, difference 0.017 [0.004, 0.03] (95% interval over 5 seeds): above real alone (interval above 0): yes; below it (interval below 0): no',
      ),
    );
    // Without the VAE-GAN or the CVAE their checks are named, not silently dropped.
    const partial = checks(rows.slice(0, 1));
    assert.ok(partial.some((l) => l.startsWith('- vae_gan: not in these results')));
    assert.ok(partial.some((l) => l.startsWith('- cvae: not in these results')));
  });
});
