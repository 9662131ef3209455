// What to say about a dataset path that does not exist (without loading any reader: the
// command line checks --data before it starts a backend).
import { basename, dirname, normalize } from 'node:path';
import { checkPathAdvice } from '../util/similar-path.ts';
import { MEDMNIST, MEDMNIST_SIZES, medmnistFileName } from './medmnist.ts';

/** The command that downloads `path` when it names a MedMNIST file (data/chestmnist.npz, x/retinamnist_64.npz), else undefined. */
export function downloadCommandFor(path: string): string | undefined {
  const name = basename(path);
  for (const flag of Object.keys(MEDMNIST)) {
    const size = MEDMNIST_SIZES.find((s) => medmnistFileName(flag, s) === name);
    if (size === undefined) continue;
    const dir = dirname(path);
    const quoted = /^[\w./-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, `'\\''`)}'`;
    return `medvae data download ${flag}${size === 28 ? '' : ` --size ${size}`}${normalize(dir) === 'data' ? '' : ` --dir ${quoted}`}`;
  }
  return undefined;
}

/** What to do about a dataset path that does not exist: download it when it names a MedMNIST file, else check the path. */
export function missingDatasetAdvice(path: string): string {
  const download = downloadCommandFor(path);
  return download ? `download it with \`${download}\`` : checkPathAdvice(path);
}
