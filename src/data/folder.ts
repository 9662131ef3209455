// An image folder: class sub-folders of PNG/JPEG files (torchvision's ImageFolder convention:
// classes are the sub-folder names sorted, files found recursively below each), or a flat folder of
// images without labels. When <root>/<split> is a folder, that is the split's root; otherwise the
// root itself serves every split.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError } from './errors.ts';
import { IMAGE_EXTENSIONS } from './format.ts';
import { ImageFileSplit } from './image-files.ts';
import type { DatasetSplit } from './types.ts';

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** Image files below a folder, in sorted order (names compared by code point, as Python sorts). */
async function imagesBelow(folder: string): Promise<string[]> {
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) found.push(...(await imagesBelow(path)));
    else if (IMAGE_EXTENSIONS.test(entry.name)) found.push(path);
  }
  return found;
}

export async function openFolder(root: string, split: string): Promise<DatasetSplit> {
  const base = (await isDirectory(join(root, split))) ? join(root, split) : root;
  const entries = (await readdir(base, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const classNames: string[] = [];
  const paths: string[] = [];
  const classOf: number[] = [];
  for (const entry of entries.filter((e) => e.isDirectory())) {
    const files = await imagesBelow(join(base, entry.name));
    if (files.length === 0) continue;
    for (const f of files) {
      paths.push(f);
      classOf.push(classNames.length);
    }
    classNames.push(entry.name);
  }
  if (classNames.length > 255) throw new DatasetError(base, `${classNames.length} class folders (at most 255 supported)`);
  if (paths.length > 0) return new ImageFileSplit(`${base}[${split}]`, paths, classNames, Uint8Array.from(classOf));
  const flat = entries.filter((e) => e.isFile() && IMAGE_EXTENSIONS.test(e.name)).map((e) => join(base, e.name));
  if (flat.length === 0) {
    throw new DatasetError(base, 'empty dataset: no PNG/JPEG images in class sub-folders or in the folder itself');
  }
  return new ImageFileSplit(`${base}[${split}]`, flat, []);
}
