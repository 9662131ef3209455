// One entry point from a config's data section to a readable split.
import { stat } from 'node:fs/promises';
import { basename, dirname, normalize } from 'node:path';
import type { DataConfig } from '../config/schema.ts';
import { resolveBundledPath } from '../util/package-root.ts';
import { checkPathAdvice } from '../util/similar-path.ts';
import { DatasetNotFoundError } from './errors.ts';
import { checkFormat } from './format.ts';
import { openFolder } from './folder.ts';
import { openGleason } from './gleason.ts';
import { MEDMNIST, MEDMNIST_SIZES, medmnistFileName, openMedmnist } from './medmnist.ts';
import type { DatasetSplit } from './types.ts';

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

/** A relative path not found from the working directory may name the package's bundled copy (data/retinamnist.npz). */
export async function openDataset(cfg: Pick<DataConfig, 'format' | 'path'>, split: string): Promise<DatasetSplit> {
  const path = resolveBundledPath(cfg.path);
  const exists = await stat(path).then(() => true, () => false);
  if (!exists) throw new DatasetNotFoundError(cfg.path, missingDatasetAdvice(cfg.path));
  checkFormat(path, cfg.format);
  switch (cfg.format) {
    case 'medmnist':
      return openMedmnist(path, split);
    case 'gleason':
      return openGleason(path, split);
    case 'folder':
      return openFolder(path, split);
  }
}
