// One entry point from a config's data section to a readable split.
import { stat } from 'node:fs/promises';
import type { DataConfig } from '../config/schema.ts';
import { resolveBundledPath } from '../util/package-root.ts';
import { DatasetNotFoundError } from './errors.ts';
import { checkFormat } from './format.ts';
import { openFolder } from './folder.ts';
import { openGleason } from './gleason.ts';
import { openMedmnist } from './medmnist.ts';
import { missingDatasetAdvice } from './missing.ts';
import type { DatasetSplit } from './types.ts';

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
