// Test data the data-layer tests make themselves: .npy arrays, zip archives in the three variants
// found in the wild (stored, deflated, ZIP64 with 0xFFFFFFFF local sizes), MedMNIST-style npz
// files, and Gleason-layout trees of real JPEGs. Written independently of src/data's readers.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import sharp from 'sharp';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `medvae-${prefix}-`));
}

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

export type ZipVariant = 'stored' | 'deflated' | 'zip64';

/**
 * A zip archive. 'zip64' mimics NumPy's newer writer: deflated members whose local headers carry
 * 0xFFFFFFFF sizes (real sizes in a ZIP64 extra), a central directory whose sizes and offsets are
 * all in ZIP64 extras, and a ZIP64 end record with its locator.
 */
export function zipBytes(members: { name: string; data: Buffer }[], variant: ZipVariant): Buffer {
  const zip64 = variant === 'zip64';
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name, 'utf8');
    const method = variant === 'stored' ? 0 : 8;
    const body = method === 0 ? m.data : deflateRawSync(m.data);
    const crc = crc32(m.data) >>> 0;
    const localExtra = zip64 ? Buffer.alloc(20) : Buffer.alloc(0);
    if (zip64) {
      localExtra.writeUInt16LE(1, 0);
      localExtra.writeUInt16LE(16, 2);
      localExtra.writeBigUInt64LE(BigInt(m.data.length), 4);
      localExtra.writeBigUInt64LE(BigInt(body.length), 12);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(zip64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(zip64 ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    parts.push(local, name, localExtra, body);

    const centralExtra = zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (zip64) {
      centralExtra.writeUInt16LE(1, 0);
      centralExtra.writeUInt16LE(24, 2);
      centralExtra.writeBigUInt64LE(BigInt(m.data.length), 4);
      centralExtra.writeBigUInt64LE(BigInt(body.length), 12);
      centralExtra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(zip64 ? 45 : 20, 4);
    entry.writeUInt16LE(zip64 ? 45 : 20, 6);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(zip64 ? 0xffffffff : body.length, 20);
    entry.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt16LE(centralExtra.length, 30);
    entry.writeUInt32LE(zip64 ? 0xffffffff : offset, 42);
    central.push(entry, name, centralExtra);
    offset += 30 + name.length + localExtra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const end64 = Buffer.alloc(56);
    end64.writeUInt32LE(0x06064b50, 0);
    end64.writeBigUInt64LE(44n, 4);
    end64.writeUInt16LE(45, 12);
    end64.writeUInt16LE(45, 14);
    end64.writeBigUInt64LE(BigInt(members.length), 24);
    end64.writeBigUInt64LE(BigInt(members.length), 32);
    end64.writeBigUInt64LE(BigInt(cd.length), 40);
    end64.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(end64, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(zip64 ? 0xffff : members.length, 8);
  end.writeUInt16LE(zip64 ? 0xffff : members.length, 10);
  end.writeUInt32LE(zip64 ? 0xffffffff : cd.length, 12);
  end.writeUInt32LE(zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cd, ...tail, end]);
}

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
  return sharp(raw, { raw: { width: side, height: side, channels: 3 } }).jpeg({ quality }).toBuffer();
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
