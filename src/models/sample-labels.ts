// The labels a conditional model is sampled with.

/**
 * One-hot labels for n conditional samples: all `label` when given, else classes (or findings) in
 * turn, so a grid or a synthetic dataset covers every class evenly.
 */
export function sampleLabels(n: number, width: number, label?: number): Float32Array {
  const labels = new Float32Array(n * width);
  for (let k = 0; k < n; k++) labels[k * width + (label ?? k % width)] = 1;
  return labels;
}
