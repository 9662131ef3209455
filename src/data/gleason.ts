// The prostate Gleason patch dataset (layout of MicheleDamian/prostate-gleason-dataset): a root
// with flat folders train/ and test/ of "<biopsy-id>_<patch>.jpeg" (256x256 RGB) and train.csv /
// test.csv with columns image,height_biopsy,width_biopsy,class. Some 65,000 training patches: the
// split is indexed from its CSV and files are read only when a batch needs them.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError } from './errors.ts';
import { ImageFileSplit } from './image-files.ts';
import type { DatasetSplit } from './types.ts';

export const GLEASON_CLASSES = ['stroma/benign', 'Gleason 3', 'Gleason 4', 'Gleason 5'];
/** How many missing files an error lists by name. */
const MISSING_LISTED = 5;

export async function openGleason(root: string, split: string): Promise<DatasetSplit> {
  const csvPath = join(root, `${split}.csv`);
  const folder = join(root, split);
  let csv: string;
  try {
    csv = await readFile(csvPath, 'utf8');
  } catch (err) {
    throw new DatasetError(
      csvPath,
      `cannot read the ${split} index (${(err as Error).message}); a Gleason root holds ${split}.csv and ${split}/`,
      { cause: err },
    );
  }
  const lines = csv.split(/\r?\n/).filter((l) => l.trim().length > 0);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  const imageColumn = header.indexOf('image');
  const classColumn = header.indexOf('class');
  if (imageColumn < 0 || classColumn < 0) {
    throw new DatasetError(csvPath, `header '${lines[0] ?? ''}' lacks the columns 'image' and 'class'`);
  }
  if (lines.length < 2) throw new DatasetError(csvPath, 'empty dataset: the CSV has no rows');

  let present: Set<string>;
  try {
    present = new Set(await readdir(folder));
  } catch (err) {
    throw new DatasetError(folder, `cannot list the ${split} images (${(err as Error).message})`, { cause: err });
  }
  const paths: string[] = [];
  const classes = new Uint8Array(lines.length - 1);
  const missing: string[] = [];
  for (let row = 1; row < lines.length; row++) {
    const cells = lines[row].split(',');
    if (cells.length !== header.length) {
      throw new DatasetError(csvPath, `line ${row + 1}: ${cells.length} fields, header has ${header.length}`);
    }
    const name = cells[imageColumn].trim();
    const label = Number(cells[classColumn]);
    if (!Number.isInteger(label) || label < 0 || label >= GLEASON_CLASSES.length) {
      throw new DatasetError(csvPath, `line ${row + 1}: class '${cells[classColumn]}' is not 0..${GLEASON_CLASSES.length - 1}`);
    }
    if (!present.has(name)) missing.push(name);
    paths.push(join(folder, name));
    classes[row - 1] = label;
  }
  if (missing.length > 0) {
    const listed = missing.slice(0, MISSING_LISTED).join(', ');
    const more = missing.length > MISSING_LISTED ? ` and ${missing.length - MISSING_LISTED} more` : '';
    throw new DatasetError(csvPath, `${missing.length} listed image(s) missing from ${folder}: ${listed}${more}`);
  }
  return new ImageFileSplit(`${root}[${split}]`, paths, GLEASON_CLASSES, classes);
}
