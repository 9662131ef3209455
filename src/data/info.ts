// `medvae data info <path>`: what a dataset holds, split by split: sample count, image shape and
// how the labels are distributed. Reads labels and indexes only, never all the images.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetFormat } from '../config/schema.ts';
import { NpzArchive } from './npz.ts';
import { openDataset } from './open.ts';
import { checkFormat, inferFormat } from './format.ts';
import type { DatasetSplit } from './types.ts';

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

async function splitNames(path: string, format: DatasetFormat): Promise<string[]> {
  if (format === 'medmnist') {
    const archive = await NpzArchive.open(path);
    try {
      return archive.arrayNames().filter((n) => n.endsWith('_images')).map((n) => n.replace(/_images$/, ''));
    } finally {
      await archive.close();
    }
  }
  const candidates = ['train', 'val', 'test'];
  const found: string[] = [];
  for (const s of candidates) {
    if (await exists(join(path, format === 'gleason' ? `${s}.csv` : s))) found.push(s);
  }
  return found.length > 0 || format === 'gleason' ? found : ['all'];
}

async function describeSplit(name: string, split: DatasetSplit): Promise<string[]> {
  const shape = split.imageShape ? split.imageShape.join(' x ') : 'per file (decoded on load)';
  const lines = [`  ${name}: ${split.length} samples, image ${shape}, labels: ${split.labelKind}`];
  const labels = await split.labels();
  if (split.labelKind === 'none') return lines;
  const counts = new Array<number>(split.labelWidth).fill(0);
  for (const row of labels) {
    if (split.labelKind === 'class') counts[row[0]]++;
    else row.forEach((v, j) => (counts[j] += v));
  }
  const total = labels.length;
  const what = split.labelKind === 'class' ? 'class' : 'finding (positives)';
  lines.push(`    by ${what}:`);
  counts.forEach((c, j) => {
    const pct = total > 0 ? ((100 * c) / total).toFixed(1) : '0.0';
    lines.push(`      ${String(j).padStart(2)} ${split.labelNames[j].padEnd(24)} ${String(c).padStart(7)}  ${pct.padStart(5)}%`);
  });
  return lines;
}

export async function describeDataset(path: string, format?: DatasetFormat): Promise<string> {
  const fmt = format ?? inferFormat(path) ?? (path.toLowerCase().endsWith('.npz') ? 'medmnist' : 'folder');
  if (!(await exists(path))) {
    // openDataset's error names the path and how to get the data.
    await openDataset({ format: fmt, path }, 'train');
  }
  checkFormat(path, fmt);
  const lines = [`${path} (format ${fmt})`];
  for (const name of await splitNames(path, fmt)) {
    const split = await openDataset({ format: fmt, path }, name);
    try {
      lines.push(...(await describeSplit(name, split)));
    } finally {
      await split.close();
    }
  }
  return lines.join('\n');
}
