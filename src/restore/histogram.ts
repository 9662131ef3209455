// Score histograms for the report: equal-width bins over the range of all scores, counted
// separately for normal images and the rest, drawn as an inline SVG of overlaid bars.
import { escapeHtml } from '../util/escape-html.ts';

export interface Histogram {
  edges: number[];
  normal: number[];
  rest: number[];
}

/** `bins` equal bins over [min, max] of the finite scores; `isNormal` splits the counts. */
export function histogram(scores: readonly number[], isNormal: readonly boolean[], bins = 20): Histogram {
  const finite = scores.filter(Number.isFinite);
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const width = hi > lo ? (hi - lo) / bins : 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + i * width);
  const normal = new Array<number>(bins).fill(0);
  const rest = new Array<number>(bins).fill(0);
  scores.forEach((s, i) => {
    if (!Number.isFinite(s)) return;
    const b = Math.min(bins - 1, Math.floor((s - lo) / width));
    (isNormal[i] ? normal : rest)[b]! += 1;
  });
  return { edges, normal, rest };
}

/** Overlaid bars, each group scaled to its own total so groups of different sizes compare. */
export function histogramSvg(h: Histogram, title: string): string {
  const w = 360;
  const ht = 160;
  const pad = 24;
  const bins = h.normal.length;
  const share = (counts: number[]): number[] => {
    const total = counts.reduce((s, v) => s + v, 0);
    return counts.map((c) => (total > 0 ? c / total : 0));
  };
  const [n, r] = [share(h.normal), share(h.rest)];
  const top = Math.max(...n, ...r, 1e-9);
  const bw = (w - 2 * pad) / bins;
  const bars = (values: number[], colour: string): string =>
    values
      .map((v, i) => {
        const bh = (v / top) * (ht - 2 * pad);
        return `<rect x="${(pad + i * bw).toFixed(1)}" y="${(ht - pad - bh).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="${colour}" fill-opacity="0.55"/>`;
      })
      .join('');
  const label = (v: number): string => (Math.abs(v) >= 1000 ? v.toExponential(2) : v.toPrecision(3));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${ht}" role="img" aria-label="${escapeHtml(title)}">
<text x="${pad}" y="14" font-size="12">${escapeHtml(title)} (blue: normal, orange: rest; share of each group)</text>
${bars(n, '#1f77b4')}${bars(r, '#ff7f0e')}
<text x="${pad}" y="${ht - 6}" font-size="10">${escapeHtml(label(h.edges[0]!))}</text>
<text x="${w - pad}" y="${ht - 6}" font-size="10" text-anchor="end">${escapeHtml(label(h.edges[h.edges.length - 1]!))}</text>
</svg>`;
}
