// Frechet distance between two Gaussians fitted to feature vectors (the formula behind FID):
//   d^2 = |mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2).
// The symmetric form (C1^1/2 C2 C1^1/2) has the same trace of square root as C1 C2 but stays
// symmetric PSD, so the Jacobi square root applies.
import { LinalgError, matMul, meanAndCovariance, sqrtPsd, trace, type SquareMatrix } from './linalg.ts';

export interface GaussianStats {
  mean: Float64Array;
  cov: SquareMatrix;
}

export function gaussianStats(rows: Float32Array | Float64Array, n: number, d: number): GaussianStats {
  return meanAndCovariance(rows, n, d);
}

export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  const d = a.mean.length;
  if (b.mean.length !== d || a.cov.d !== d || b.cov.d !== d) {
    throw new LinalgError(`frechetDistance: feature sizes differ (${d} vs ${b.mean.length})`);
  }
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mean[i] - b.mean[i]) ** 2;
  const rootA = sqrtPsd(a.cov);
  const crossRoot = sqrtPsd(matMul(matMul(rootA, b.cov), rootA));
  const value = meanTerm + trace(a.cov) + trace(b.cov) - 2 * trace(crossRoot);
  // The exact value is >= 0; rounding can leave a tiny negative for identical inputs.
  return Math.max(value, 0);
}
