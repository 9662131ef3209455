// scores.csv: one row per image, `index` (in its split), `label` (class index, empty when none),
// then the scores of score.ts. Plain RFC 4180 numbers, no quoting needed.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.ts';
import { SCORE_NAMES, type ImageScoreRows } from './score.ts';

export interface ScoreTable extends ImageScoreRows {
  index: number[];
  label: (number | null)[];
}

const HEADER = ['index', 'label', ...SCORE_NAMES];

export function formatScoresCsv(t: ScoreTable): string {
  const lines = [HEADER.join(',')];
  t.index.forEach((idx, i) => {
    lines.push([idx, t.label[i] ?? '', ...SCORE_NAMES.map((k) => String(t[k][i]))].join(','));
  });
  return `${lines.join('\n')}\n`;
}

export function writeScoresCsv(path: string, t: ScoreTable): void {
  writeFileAtomic(path, formatScoresCsv(t));
}

export function readScoresCsv(path: string): ScoreTable {
  const [head, ...rows] = readFileSync(path, 'utf8').trimEnd().split('\n');
  if (head !== HEADER.join(',')) throw new Error(`${path}: expected the header ${HEADER.join(',')}, got ${head}`);
  const t: ScoreTable = { index: [], label: [], neg_elbo: [], neg_iwae: [], recon_mse: [] };
  for (const row of rows) {
    const cells = row.split(',');
    t.index.push(Number(cells[0]));
    t.label.push(cells[1] === '' ? null : Number(cells[1]));
    SCORE_NAMES.forEach((k, j) => t[k].push(Number(cells[2 + j])));
  }
  return t;
}
