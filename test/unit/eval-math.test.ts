// The eval statistics against hand-computed values: PSD square root, Frechet distance, kernel
// distance, rank AUC with ties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matMul, sqrtPsd, squareMatrix, symmetricEigen, LinalgError } from '../../src/eval/linalg.ts';
import { frechetDistance, gaussianStats } from '../../src/eval/frechet.ts';
import { kernelDistance, mmdUnbiased } from '../../src/eval/kid.ts';
import { binaryAuc, macroAuc } from '../../src/eval/auc.ts';
import { mulberry32 } from '../../src/util/rng.ts';

function assertClose(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected} (tol ${tol})`);
}

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
