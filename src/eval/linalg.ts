// Small dense linear algebra in plain TypeScript for the feature-space statistics: the matrices are
// feature-dim square (64 x 64 here), so O(d^3) JS loops cost milliseconds and keep the numbers
// identical on every backend. Matrices are row-major Float64Array with their side passed alongside.

export class LinalgError extends Error {
  override name = 'LinalgError';
}

/** A d x d row-major matrix. */
export interface SquareMatrix {
  d: number;
  data: Float64Array;
}

export function squareMatrix(d: number, rows?: readonly (readonly number[])[]): SquareMatrix {
  const data = new Float64Array(d * d);
  if (rows) {
    if (rows.length !== d || rows.some((r) => r.length !== d)) {
      throw new LinalgError(`squareMatrix: expected ${d} rows of ${d} numbers`);
    }
    rows.forEach((r, i) => r.forEach((v, j) => (data[i * d + j] = v)));
  }
  return { d, data };
}

export function matMul(a: SquareMatrix, b: SquareMatrix): SquareMatrix {
  if (a.d !== b.d) throw new LinalgError(`matMul: sides differ (${a.d} vs ${b.d})`);
  const d = a.d;
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a.data[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b.data[k * d + j];
    }
  }
  return { d, data: out };
}

export function trace(a: SquareMatrix): number {
  let t = 0;
  for (let i = 0; i < a.d; i++) t += a.data[i * a.d + i];
  return t;
}

/** (a + a^T) / 2: removes the rounding asymmetry products of symmetric matrices pick up. */
export function symmetrize(a: SquareMatrix): SquareMatrix {
  const d = a.d;
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) out[i * d + j] = 0.5 * (a.data[i * d + j] + a.data[j * d + i]);
  }
  return { d, data: out };
}

export interface SymmetricEigen {
  /** Eigenvalues, in the order of the columns of `vectors`. */
  values: Float64Array;
  /** Eigenvectors as columns of a d x d row-major matrix. */
  vectors: SquareMatrix;
}

/**
 * Cyclic Jacobi eigen-decomposition of a symmetric matrix. Chosen over Newton-Schulz because it
 * is unconditionally convergent, exact for singular (rank-deficient) covariances, and gives the
 * eigenvalues we clamp at zero for the PSD square root.
 */
export function symmetricEigen(input: SquareMatrix, maxSweeps = 100): SymmetricEigen {
  const d = input.d;
  const a = Float64Array.from(input.data);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let scale = 0;
  for (let i = 0; i < d * d; i++) scale += a[i] * a[i];
  const tolerance = 1e-30 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q] * a[p * d + q];
    if (off <= tolerance) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (apq === 0) continue;
        const app = a[p * d + p];
        const aqq = a[q * d + q];
        // Rotation angle that zeroes a[p][q] (Golub & Van Loan, symmetric Schur decomposition).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p];
          const akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k];
          const aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i];
  return { values, vectors: { d, data: v } };
}

/**
 * Principal square root of a symmetric positive semi-definite matrix: V diag(sqrt(max(l, 0))) V^T.
 * Small negative eigenvalues are rounding noise of a PSD matrix and are clamped to zero; a clearly
 * negative one means the input was not PSD, which is an error.
 */
export function sqrtPsd(a: SquareMatrix): SquareMatrix {
  const d = a.d;
  const { values, vectors } = symmetricEigen(symmetrize(a));
  const largest = values.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const roots = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    if (values[i] < -1e-8 * Math.max(largest, 1)) {
      throw new LinalgError(`sqrtPsd: matrix is not positive semi-definite (eigenvalue ${values[i]})`);
    }
    roots[i] = Math.sqrt(Math.max(values[i], 0));
  }
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors.data[i * d + k] * roots[k] * vectors.data[j * d + k];
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
  return { d, data: out };
}

/** Row vectors (n x d, row-major) to their mean and unbiased (n - 1) covariance. */
export function meanAndCovariance(rows: Float64Array | Float32Array, n: number, d: number): { mean: Float64Array; cov: SquareMatrix } {
  if (rows.length !== n * d) throw new LinalgError(`meanAndCovariance: ${rows.length} values is not ${n} x ${d}`);
  if (n < 2) throw new LinalgError(`meanAndCovariance: need at least 2 rows, got ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += rows[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) centred[j] = rows[i * d + j] - mean[j];
    for (let p = 0; p < d; p++) {
      const cp = centred[p];
      for (let q = p; q < d; q++) cov[p * d + q] += cp * centred[q];
    }
  }
  for (let p = 0; p < d; p++) {
    for (let q = p; q < d; q++) {
      cov[p * d + q] /= n - 1;
      cov[q * d + p] = cov[p * d + q];
    }
  }
  return { mean, cov: { d, data: cov } };
}
