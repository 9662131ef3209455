// Improved precision and recall of generated samples (Kynkäänniemi et al. 2019): each set of
// feature vectors stands for a manifold, the union of balls around its points whose radius is the
// distance to the point's k-th nearest neighbour in the same set. Precision is the share of
// generated points inside the real manifold (are samples realistic? garbage draws lower it);
// recall the share of real points inside the generated manifold (are all modes covered? dropped
// modes lower it). Distances are Euclidean, in float64; a point on a ball's surface counts as inside.

export interface PrecisionRecall {
  k: number;
  precision: number;
  recall: number;
}

/** Default neighbourhood size, the paper's. */
export const DEFAULT_PR_K = 3;

/** Euclidean distance between row i of `a` and row j of `b` (rows of d values). */
function rowDistance(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, d: number): number {
  let sum = 0;
  for (let c = 0; c < d; c++) {
    const diff = a[i * d + c]! - b[j * d + c]!;
    sum += diff * diff;
  }
  return Math.sqrt(sum);
}

/** Per point of `points` (n rows of d), the distance to its k-th nearest other point of the set. */
export function kNearestRadii(points: ArrayLike<number>, n: number, d: number, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new RangeError(`k-NN radii need 1 <= k < n points, got k ${k} and ${n} points`);
  const radii = new Float64Array(n);
  const others = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    for (let j = 0, o = 0; j < n; j++) if (j !== i) others[o++] = rowDistance(points, i, points, j, d);
    others.sort();
    radii[i] = others[k - 1]!;
  }
  return radii;
}

/** Share of the `queries` rows that lie within some ball (centre: a row of `centres`, radius: its entry of `radii`). */
export function shareInside(
  queries: ArrayLike<number>,
  nQueries: number,
  centres: ArrayLike<number>,
  radii: Float64Array,
  d: number,
): number {
  let inside = 0;
  for (let q = 0; q < nQueries; q++) {
    for (let c = 0; c < radii.length; c++) {
      if (rowDistance(queries, q, centres, c, d) <= radii[c]!) {
        inside++;
        break;
      }
    }
  }
  return inside / nQueries;
}

/** Precision of `generated` against the real manifold and recall of `real` against the generated one. */
export function precisionRecall(
  real: ArrayLike<number>,
  nReal: number,
  generated: ArrayLike<number>,
  nGenerated: number,
  d: number,
  k = DEFAULT_PR_K,
): PrecisionRecall {
  return {
    k,
    precision: shareInside(generated, nGenerated, real, kNearestRadii(real, nReal, d, k), d),
    recall: shareInside(real, nReal, generated, kNearestRadii(generated, nGenerated, d, k), d),
  };
}
