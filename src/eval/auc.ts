// ROC AUC by the rank (Mann-Whitney U) formula: AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)
// with R_pos the sum of the positives' ranks among all scores, tied scores sharing their mean rank
// (a positive tied with a negative counts one half).

/** Binary AUC; NaN when one class is absent (AUC is undefined then). */
export function binaryAuc(scores: ArrayLike<number>, positives: ArrayLike<boolean>): number {
  const n = scores.length;
  if (positives.length !== n) throw new RangeError(`binaryAuc: ${n} scores but ${positives.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const ranks = new Float64Array(n);
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && scores[order[end]] === scores[order[start]]) end++;
    // 1-based ranks start+1 .. end share their mean.
    const mean = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = mean;
    start = end;
  }
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; i++) {
    if (positives[i]) {
      nPos++;
      rankSum += ranks[i];
    }
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Macro AUC over columns of an n x k score matrix: one-vs-rest per class (multi-class, `targets`
 * one-hot) or per finding (multi-label, multi-hot). Columns whose AUC is undefined (class absent
 * from the targets) are left out of the mean; NaN if none is defined.
 */
export function macroAuc(scores: Float32Array | Float64Array, targets: Float32Array | Float64Array, n: number, k: number): number {
  if (scores.length !== n * k || targets.length !== n * k) throw new RangeError(`macroAuc: expected ${n} x ${k} scores and targets`);
  let sum = 0;
  let defined = 0;
  for (let c = 0; c < k; c++) {
    const col = new Float64Array(n);
    const pos: boolean[] = new Array<boolean>(n);
    for (let i = 0; i < n; i++) {
      col[i] = scores[i * k + c];
      pos[i] = targets[i * k + c] > 0.5;
    }
    const auc = binaryAuc(col, pos);
    if (!Number.isNaN(auc)) {
      sum += auc;
      defined++;
    }
  }
  return defined > 0 ? sum / defined : NaN;
}
