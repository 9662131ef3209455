// The short tables `medvae impute` and `medvae denoise` print on stdout: the model's number beside
// the classical baselines' and which is better, e.g.
//   psnr_missing (dB)  model 20.48  mean fill 11.88  harmonic 22.07  <- harmonic better
// With --json they print their one JSON line instead (the same numbers, unrounded).

export interface Comparison {
  metric: string;
  model: number;
  /** [name, value] of each baseline, in the order shown. */
  baselines: [string, number][];
  /** Decimals shown. */
  digits: number;
  /** Default true (PSNR, SSIM). */
  higherIsBetter?: boolean;
}

function format(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

/** Which is better: the model or the best baseline (nothing when a number is missing or there is no baseline). */
function verdict(row: Comparison): string {
  const sign = row.higherIsBetter === false ? -1 : 1;
  const finite = row.baselines.filter(([, v]) => Number.isFinite(v));
  if (!Number.isFinite(row.model) || finite.length === 0) return '';
  const [name, best] = finite.reduce((a, b) => (sign * b[1] > sign * a[1] ? b : a));
  if (sign * row.model > sign * best) return '  <- model better';
  if (sign * row.model < sign * best) return `  <- ${name} better`;
  return `  <- model and ${name} tie`;
}

/** One aligned line per comparison. */
export function comparisonLines(rows: Comparison[]): string[] {
  const width = Math.max(0, ...rows.map((r) => r.metric.length));
  return rows.map((r) => {
    const cells = [`model ${format(r.model, r.digits)}`, ...r.baselines.map(([name, v]) => `${name} ${format(v, r.digits)}`)];
    return `${r.metric.padEnd(width)}  ${cells.join('  ')}${verdict(r)}`;
  });
}

/** The table (a heading line, then the comparisons), or with `json` the summary as one JSON line. */
export function printSummary(json: boolean | undefined, summary: object, heading: string, rows: Comparison[]): void {
  process.stdout.write(json ? `${JSON.stringify(summary)}\n` : `${[heading, ...comparisonLines(rows)].join('\n')}\n`);
}
