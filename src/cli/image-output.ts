// `--out` of every command that writes images (sample, reconstruct, denoise, interpolate, impute):
// the path's form decides what is written. `x.png`: one grid image, its rows labelled; a folder (a
// path without an extension, ending in a slash, or an existing folder): one PNG per image; `x.npz`:
// arrays in the MedMNIST layout. Every write is atomic, and a path whose form clashes with what is
// already on disk (`--out some-folder.png`, a folder path that is a file) is refused before any work.
import { statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { LabelKind } from '../data/types.ts';
import { writeNpz, type NpyInput } from '../data/npz-writer.ts';
import { denormalize, writeGrid, writePng, type GridOptions, type ImageStack } from '../run/images.ts';
import { writeDirAtomic } from '../util/atomic.ts';
import { UsageError } from './errors.ts';

export type OutForm = 'grid' | 'folder' | 'npz';

export interface OutTarget {
  form: OutForm;
  path: string;
}

/** The three forms, as every message about --out names them. */
export const OUT_FORMS =
  'FILE.png (one labelled grid image), DIR (one PNG per image: a path without an extension, or an existing folder) or FILE.npz (arrays in the MedMNIST layout)';

/** What `--out PATH` asks for; a UsageError for any other extension or a clash with what is on disk. */
export function parseOut(path: string): OutTarget {
  if (path.length === 0) throw new UsageError(`--out is empty; give ${OUT_FORMS}`);
  const onDisk = statSync(path, { throwIfNoEntry: false });
  const ext = /[\\/]$/.test(path) ? '' : extname(path).toLowerCase();
  if (onDisk?.isDirectory()) {
    if (ext === '.png' || ext === '.npz')
      throw new UsageError(
        `--out ${path} is an existing folder, but a ${ext} path writes one file; name a file that is not a folder, or give a folder path without ${ext} for one PNG per image`,
      );
    return { form: 'folder', path };
  }
  if (ext === '') {
    if (onDisk) throw new UsageError(`--out ${path} is an existing file, not a folder; give ${OUT_FORMS}`);
    return { form: 'folder', path };
  }
  if (ext !== '.png' && ext !== '.npz') throw new UsageError(`--out ${path}: unknown extension ${ext}; give ${OUT_FORMS}`);
  if (onDisk && !onDisk.isFile()) throw new UsageError(`--out ${path} exists and is not a regular file; give another path`);
  return { form: ext === '.png' ? 'grid' : 'npz', path };
}

/** What a command has to write; the form of --out picks one of the three. */
export interface ImageOutput {
  /** The grid image (`.png`): the images in grid order and how to lay them out. */
  grid(): { stack: ImageStack; options: GridOptions };
  /** The folder: every image of `stack`, each to its file name (relative, '/'-separated). */
  files(): { stack: ImageStack; names: string[] };
  /** The npz members. */
  npz(): Record<string, NpyInput>;
}

/** Writes one output in the form `target` asks for; returns what was written, for the command's last line. */
export async function writeImageOutput(target: OutTarget, output: ImageOutput): Promise<string> {
  if (target.form === 'grid') {
    const { stack, options } = output.grid();
    await writeGrid(target.path, stack, options);
    return `${target.path} (one grid of ${stack.n} images)`;
  }
  if (target.form === 'npz') {
    const arrays = output.npz();
    writeNpz(target.path, arrays);
    return `${target.path} (${Object.keys(arrays).length} arrays)`;
  }
  const { stack, names } = output.files();
  const fill = async (dir: string): Promise<void> => {
    for (const [k, name] of names.entries()) await writePng(join(dir, name), stack, k);
  };
  // A new folder appears whole; into an existing one each file is written atomically and nothing
  // else there is touched.
  if (statSync(target.path, { throwIfNoEntry: false })) await fill(target.path);
  else await writeDirAtomic(target.path, fill);
  return `${target.path} (${names.length} PNG files)`;
}

/** File name of image k of a set: zero-padded so that names sort in order. */
export const imageFileName = (k: number): string => `${String(k).padStart(6, '0')}.png`;

/**
 * Images that come in named rows of n each (original, reconstructed, ...): the grid shows the
 * first `gridColumns` images of every row, a row each, labelled with its name; the folder has a
 * subfolder per row (spaces in the name become '-'). `rowsOf(count)` gives the rows' first `count` images each, NHWC in [-1, 1].
 */
export function rowsOutput(
  names: readonly string[],
  rowsOf: (count: number) => Float32Array[],
  shape: { n: number; size: number; channels: 1 | 3 },
  opts: { gridColumns?: number; title?: string; npz: () => Record<string, NpyInput> },
): ImageOutput {
  const { n, size, channels } = shape;
  const per = size * size * channels;
  const stackOf = (count: number): ImageStack => {
    const rows = rowsOf(count);
    const data = new Float32Array(rows.length * count * per);
    rows.forEach((d, r) => data.set(d.subarray(0, count * per), r * count * per));
    return { data, n: rows.length * count, size, channels };
  };
  return {
    grid: () => {
      const cols = Math.min(n, opts.gridColumns ?? n);
      const options: GridOptions = { cols, rowLabels: [...names] };
      if (opts.title) options.title = opts.title;
      return { stack: stackOf(cols), options };
    },
    files: () => ({
      stack: stackOf(n),
      names: names.flatMap((name) => Array.from({ length: n }, (_, k) => `${name.replace(/\s+/g, '-')}/${imageFileName(k)}`)),
    }),
    npz: opts.npz,
  };
}

/** Images in [-1, 1] as uint8, as the MedMNIST files store them. */
export const imageBytes = (values: Float32Array): Uint8Array => Uint8Array.from(values, denormalize);

/** Label rows as MedMNIST stores them: class indices (N x 1) for single-label data, multi-hot rows (N x L) for multi-label, zeros without labels. */
export function medmnistLabels(labels: Float32Array, n: number, width: number, kind: LabelKind): Uint8Array {
  if (width === 0 || kind === 'none') return new Uint8Array(n);
  if (kind === 'multilabel') return Uint8Array.from(labels);
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = labels.subarray(k * width, (k + 1) * width).indexOf(1);
  return out;
}

/**
 * The MedMNIST layout: `<split>_images` (N x S x S grey, N x S x S x 3 colour, uint8) and
 * `<split>_labels` (N x L), the other splits present and empty so that every reader of the layout
 * opens the file, and `<split>_<member>` for each extra member.
 */
export function medmnistArrays(
  split: string,
  images: { data: Uint8Array; n: number; size: number; channels: 1 | 3 },
  labels: Uint8Array,
  extra: Record<string, NpyInput> = {},
): Record<string, NpyInput> {
  const { n, size, channels } = images;
  const imageShape = channels === 1 ? [n, size, size] : [n, size, size, 3];
  const labelShape = [n, n > 0 ? labels.length / n : 1];
  const empty = (shape: number[]): NpyInput => ({ dtype: '|u1', shape: [0, ...shape.slice(1)], data: new Uint8Array(0) });
  const arrays: Record<string, NpyInput> = {};
  for (const s of ['train', 'val', 'test']) {
    arrays[`${s}_images`] = s === split ? { dtype: '|u1', shape: imageShape, data: images.data } : empty(imageShape);
    arrays[`${s}_labels`] = s === split ? { dtype: '|u1', shape: labelShape, data: labels } : empty(labelShape);
  }
  if (!['train', 'val', 'test'].includes(split)) {
    arrays[`${split}_images`] = { dtype: '|u1', shape: imageShape, data: images.data };
    arrays[`${split}_labels`] = { dtype: '|u1', shape: labelShape, data: labels };
  }
  for (const [member, array] of Object.entries(extra)) arrays[`${split}_${member}`] = array;
  return arrays;
}
