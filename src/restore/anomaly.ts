// Anomaly detection from per-image scores: "normal" classes against the rest. The AUROC is the
// probability that a random image of another class scores higher (more unusual) than a random
// normal one (src/eval/auc.ts, ties one half); 0.5 is chance.
import { binaryAuc } from '../eval/auc.ts';
import { NormalClassError } from './errors.ts';

/** Checks --normal against the class labels (class index per image, null when unlabelled). */
export function checkNormalClasses(labels: readonly (number | null)[], normal: readonly number[], classNames: readonly string[]): void {
  if (labels.some((l) => l === null))
    throw new NormalClassError('--normal needs class labels, and these images have none (or several findings each); drop --normal');
  const present = new Set(labels);
  const absent = normal.filter((c) => !present.has(c));
  if (absent.length > 0) {
    const known = [...present]
      .sort((a, b) => (a ?? 0) - (b ?? 0))
      .map((c) => (classNames[c ?? 0] ? `${c} (${classNames[c ?? 0]})` : String(c)));
    throw new NormalClassError(
      `--normal ${absent.join(',')}: no image of class ${absent.join(', ')} here; classes present: ${known.join(', ')}`,
    );
  }
  if (labels.every((l) => normal.includes(l ?? -1)))
    throw new NormalClassError(`--normal ${normal.join(',')}: every image is of a normal class, nothing to tell apart; leave a class out`);
}

export function parseNormal(value: string): number[] {
  const classes = value.split(',').map((s) => Number(s.trim()));
  if (classes.length === 0 || classes.some((c) => !Number.isInteger(c) || c < 0))
    throw new NormalClassError(`--normal ${value}: expected class indices, e.g. --normal 0 or --normal 0,1`);
  return classes;
}

/** AUROC of `scores` for telling the other classes (positives) from the normal ones. */
export function anomalyAuroc(scores: readonly number[], labels: readonly (number | null)[], normal: readonly number[]): number {
  return binaryAuc(
    scores,
    labels.map((l) => !normal.includes(l ?? -1)),
  );
}
