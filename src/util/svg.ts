// Line plots as standalone SVG text (no DOM, no fonts to fetch): the per-term loss curves the
// trainer writes after every epoch and the report inlines. Non-finite points are skipped, so a
// NaN step does not break the path.
import { escapeHtml } from './escape-html.ts';

export interface LineSeries {
  name: string;
  points: [number, number][];
}

export interface LinePlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Log-scale y (only when every finite y is > 0; otherwise linear). */
  logY?: boolean;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** About `count` round tick values covering [lo, hi] (1, 2, 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Ticks of a log10 axis spanning [lo, hi] (in log10 units): powers of ten, with 2 and 5 when few. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (const mantissas of [[1], [1, 2, 5]]) {
    ticks.length = 0;
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const m of mantissas) {
        const t = e + Math.log10(m);
        if (t >= lo - 1e-9 && t <= hi + 1e-9) ticks.push(t);
      }
    }
    if (ticks.length >= 3) break;
  }
  return ticks.length ? ticks : [lo];
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

export function lossCurveSvg(series: LineSeries[], opts: LinePlotOptions = {}): string {
  const width = opts.width ?? 480;
  const height = opts.height ?? 300;
  const margin = { left: 64, right: 16, top: opts.title ? 32 : 16, bottom: 44 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const finite = series.map((s) => ({ name: s.name, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = finite.flatMap((s) => s.points);
  const useLog = Boolean(opts.logY) && all.length > 0 && all.every(([, y]) => y > 0);
  const ty = (y: number): number => (useLog ? Math.log10(y) : y);
  let [x0, x1] = all.length ? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = all.length ? [Math.min(...all.map((p) => ty(p[1]))), Math.max(...all.map((p) => ty(p[1])))] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - Math.max(Math.abs(y0) * 0.1, 1), y1 + Math.max(Math.abs(y1) * 0.1, 1)];
  const sx = (x: number): number => margin.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number): number => margin.top + plotH - ((ty(y) - y0) / (y1 - y0)) * plotH;
  const f = (v: number): string => v.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  if (opts.title)
    parts.push(`<text x="${f(width / 2)}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${escapeHtml(opts.title)}</text>`);
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${f(sx(t))}" y1="${margin.top}" x2="${f(sx(t))}" y2="${margin.top + plotH}" stroke="#eeeeee"/>`);
    parts.push(`<text x="${f(sx(t))}" y="${margin.top + plotH + 14}" text-anchor="middle">${escapeHtml(formatTick(t))}</text>`);
  }
  for (const t of useLog ? logTicks(y0, y1) : niceTicks(y0, y1)) {
    const y = margin.top + plotH - ((t - y0) / (y1 - y0)) * plotH;
    parts.push(`<line x1="${margin.left}" y1="${f(y)}" x2="${margin.left + plotW}" y2="${f(y)}" stroke="#eeeeee"/>`);
    parts.push(
      `<text x="${margin.left - 6}" y="${f(y + 4)}" text-anchor="end">${escapeHtml(formatTick(useLog ? Number((10 ** t).toPrecision(6)) : t))}</text>`,
    );
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888888"/>`);
  if (opts.xLabel)
    parts.push(`<text x="${f(margin.left + plotW / 2)}" y="${height - 8}" text-anchor="middle">${escapeHtml(opts.xLabel)}</text>`);
  if (opts.yLabel) {
    parts.push(
      `<text transform="translate(14 ${f(margin.top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(opts.yLabel + (useLog ? ' (log)' : ''))}</text>`,
    );
  }
  finite.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    if (s.points.length === 1) {
      parts.push(`<circle cx="${f(sx(s.points[0][0]))}" cy="${f(sy(s.points[0][1]))}" r="2.5" fill="${colour}"/>`);
    } else if (s.points.length > 1) {
      const d = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${f(sx(x))} ${f(sy(y))}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
    }
  });
  if (finite.length > 1) {
    finite.forEach((s, i) => {
      const y = margin.top + 12 + i * 14;
      const x = margin.left + plotW - 8;
      parts.push(
        `<line x1="${x - 40}" y1="${y - 4}" x2="${x - 26}" y2="${y - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"/>`,
      );
      parts.push(`<text x="${x - 44}" y="${y}" text-anchor="end">${escapeHtml(s.name)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('\n');
}
