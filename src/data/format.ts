// Which reader a path needs, decided from what is on disk: the one rule `data info`, `--data` and
// openDataset's checks share.
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetFormat } from '../config/schema.ts';
import { DatasetError } from './errors.ts';

/** The image files a folder dataset is made of. */
export const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;

/** A path that is none of the formats medvae reads, or not the one data.format names. */
export class DatasetFormatError extends DatasetError {
  override name = 'DatasetFormatError';
}

const FORMATS_TRIED = "tried medmnist (an .npz file), gleason (a folder with train.csv or test.csv) and folder (a folder of PNG/JPEG images)";

/** What each format expects, for messages. */
export const FORMAT_SHAPES: Record<DatasetFormat, string> = {
  medmnist: 'an .npz file',
  gleason: 'a folder with train/, test/, train.csv, test.csv',
  folder: 'a folder of PNG/JPEG images (class sub-folders or flat)',
};

/** A zip archive (an npz under another name) starts with a local file header. */
function looksLikeZip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === 0x04034b50;
  } finally {
    closeSync(fd);
  }
}

/** Whether a folder holds an image within a few levels (class sub-folders, or split/class). */
function holdsImages(folder: string, depth: number): boolean {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isFile() && IMAGE_EXTENSIONS.test(entry.name)) return true;
    if (entry.isDirectory() && depth > 0 && holdsImages(join(folder, entry.name), depth - 1)) return true;
  }
  return false;
}

/**
 * The format `path` is in; undefined when it does not exist (openDataset then says how to get the
 * data). Throws DatasetFormatError, naming the formats tried, when it is none of them.
 */
export function inferFormat(path: string): DatasetFormat | undefined {
  if (!existsSync(path)) return undefined;
  if (statSync(path).isFile()) {
    if (path.toLowerCase().endsWith('.npz') || looksLikeZip(path)) return 'medmnist';
    throw new DatasetFormatError(path, `a file medvae cannot read as a dataset: ${FORMATS_TRIED}; point --data (data.path) at an .npz file or a dataset folder`);
  }
  if (existsSync(join(path, 'train.csv')) || existsSync(join(path, 'test.csv'))) return 'gleason';
  if (holdsImages(path, 3)) return 'folder';
  throw new DatasetFormatError(
    path,
    `a folder with no dataset medvae can read: ${FORMATS_TRIED}, and found none of them; point --data (data.path) at an .npz file or a dataset folder`,
  );
}

/** Refuses a path that is plainly not in the configured format, saying which format it looks like. */
export function checkFormat(path: string, format: DatasetFormat): void {
  const isFile = statSync(path).isFile();
  if ((format === 'medmnist') === isFile) return;
  let seen: DatasetFormat | undefined;
  try {
    seen = inferFormat(path);
  } catch {
    seen = undefined;
  }
  const hint = seen ? `it looks like format '${seen}': set data.format: ${seen} (or --set data.format=${seen})` : 'point data.path at a dataset';
  throw new DatasetFormatError(path, `is a ${isFile ? 'file' : 'folder'}, but data.format '${format}' expects ${FORMAT_SHAPES[format]}; ${hint}`);
}
