// Test data the data-layer tests make themselves: .npy arrays, zip archives in the three variants
// found in the wild (stored, deflated, ZIP64 with 0xFFFFFFFF local sizes), MedMNIST-style npz
// files, and Gleason-layout trees of real JPEGs. Written independently of src/data's readers.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeZip as zipBytes, type NpzVariant as ZipVariant } from '../../src/data/npz-writer.ts';

export interface NpyOptions {
  version?: 1 | 2 | 3;
  descr?: string;
  fortran?: boolean;
}

/** An .npy file: magic, version, header length, dict header padded to 64 bytes, data. */
export function npyBytes(shape: number[], data: Uint8Array, options: NpyOptions = {}): Buffer {
  const { version = 1, descr = '|u1', fortran = false } = options;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const preamble = version === 1 ? 10 : 12;
  const padded = Math.ceil((preamble + dict.length + 1) / 64) * 64;
  const text = dict.padEnd(padded - preamble - 1, ' ') + '\n';
  const head = Buffer.alloc(preamble);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(text.length, 8);
  else head.writeUInt32LE(text.length, 8);
  return Buffer.concat([head, Buffer.from(text, 'latin1'), Buffer.from(data)]);
}

// The zip container is the project's own writer (src/data/npz-writer.ts); the reader tests check
// it against archives that Python's zipfile and numpy.load were verified to open.
export { zipBytes, type ZipVariant };

export interface SplitArrays {
  images: Uint8Array;
  /** N x S x S (grey) or N x S x S x 3. */
  imageShape: number[];
  labels: Uint8Array;
  labelShape: number[];
}

/** Deterministic pixel values that differ per sample, row, column and channel. */
export function patternPixels(n: number, side: number, channels: number, salt = 0): Uint8Array {
  const out = new Uint8Array(n * side * side * channels);
  for (let i = 0; i < out.length; i++) out[i] = (i * 37 + salt * 101 + ((i / 7) | 0)) & 0xff;
  return out;
}

/** A MedMNIST-layout npz with the given splits, in one zip variant. */
export async function writeNpz(path: string, splits: Record<string, SplitArrays>, variant: ZipVariant): Promise<Buffer> {
  const members: { name: string; data: Buffer }[] = [];
  for (const [split, a] of Object.entries(splits)) {
    members.push({ name: `${split}_images.npy`, data: npyBytes(a.imageShape, a.images) });
    members.push({ name: `${split}_labels.npy`, data: npyBytes(a.labelShape, a.labels) });
  }
  const bytes = zipBytes(members, variant);
  await writeFile(path, bytes);
  return bytes;
}

/** A small RGB split: n images of side x side, class labels i % classes. */
export function rgbSplit(n: number, side: number, classes: number, salt = 0): SplitArrays {
  return {
    images: patternPixels(n, side, 3, salt),
    imageShape: [n, side, side, 3],
    labels: Uint8Array.from({ length: n }, (_, i) => i % classes),
    labelShape: [n, 1],
  };
}

/** A smooth, tissue-like RGB test image (gradients and stripes compress like real patches). */
export function syntheticRgb(side: number, seed: number): Buffer {
  const out = Buffer.alloc(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const o = (y * side + x) * 3;
      out[o] = (128 + 100 * Math.sin((x + seed * 13) / 9) * Math.cos(y / 17)) & 0xff;
      out[o + 1] = (96 + 80 * Math.sin((x * y + seed) / 300)) & 0xff;
      out[o + 2] = (160 + 60 * Math.cos((y + seed * 7) / 11)) & 0xff;
    }
  }
  return out;
}

export async function jpegOf(raw: Buffer, side: number, quality = 90): Promise<Buffer> {
  return sharp(raw, { raw: { width: side, height: side, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}

/**
 * A Gleason-layout root: train/ and test/ of <biopsy>_<patch>.jpeg plus train.csv/test.csv with
 * image,height_biopsy,width_biopsy,class. Sample i of a split has class i % 4.
 */
export async function writeGleasonTree(root: string, counts: { train: number; test: number }, side = 32): Promise<void> {
  for (const split of ['train', 'test'] as const) {
    await mkdir(join(root, split), { recursive: true });
    const rows = ['image,height_biopsy,width_biopsy,class'];
    for (let i = 0; i < counts[split]; i++) {
      const name = `biopsy${Math.floor(i / 5)}_${i}.jpeg`;
      await writeFile(join(root, split, name), await jpegOf(syntheticRgb(side, i), side));
      rows.push(`${name},21760,28672,${i % 4}`);
    }
    await writeFile(join(root, `${split}.csv`), rows.join('\n') + '\n');
  }
}
