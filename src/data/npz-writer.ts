// Writes .npz files in NumPy's own layout (a zip of .npy members), so synthetic datasets open in
// numpy, medmnist and this project's reader alike. Three container variants, as found in the wild:
// 'deflated' (numpy.savez_compressed, the official MedMNIST files), 'stored' (numpy.savez), and
// 'zip64' (newer numpy: deflated members whose local headers carry 0xFFFFFFFF sizes, the real ones
// in zip64 extras, and a zip64 end record). The tests use it to make all three.
import { deflateRawSync, crc32 } from 'node:zlib';
import { writeFileAtomic } from '../util/atomic.ts';

export type NpzVariant = 'deflated' | 'stored' | 'zip64';

export interface NpyInput {
  dtype: '|u1' | '<f4' | '<i8' | '<i4';
  shape: number[];
  data: Uint8Array | Float32Array | BigInt64Array | Int32Array;
}

/** An .npy file: magic, version 1.0, a header dict padded to 64 bytes, then the C-order data. */
export function encodeNpy(array: NpyInput): Buffer {
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '${array.dtype}', 'fortran_order': False, 'shape': ${shape}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const preamble = Buffer.alloc(10);
  preamble.write('\x93NUMPY', 0, 'latin1');
  preamble[6] = 1;
  preamble[7] = 0;
  preamble.writeUInt16LE(header.length, 8);
  const data = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  return Buffer.concat([preamble, Buffer.from(header, 'latin1'), data]);
}

const DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1;

/** A zip64 extended-information extra field (id 0x0001) carrying the given 64-bit values in order. */
function zip64Extra(values: readonly number[]): Buffer {
  const extra = Buffer.alloc(4 + 8 * values.length);
  extra.writeUInt16LE(0x0001, 0);
  extra.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => extra.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return extra;
}

/** A zip archive of the given members. */
export function encodeZip(members: { name: string; data: Buffer }[], variant: NpzVariant): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const zip64 = variant === 'zip64';
  for (const m of members) {
    const name = Buffer.from(m.name, 'utf8');
    const method = variant === 'stored' ? 0 : 8;
    const body = method === 8 ? deflateRawSync(m.data) : m.data;
    const crc = crc32(m.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(zip64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_DATE_1980, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(zip64 ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const localExtra = zip64 ? zip64Extra([m.data.length, body.length]) : Buffer.alloc(0);
    local.writeUInt16LE(localExtra.length, 28);
    parts.push(local, name, localExtra, body);

    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(zip64 ? 45 : 20, 4);
    entry.writeUInt16LE(zip64 ? 45 : 20, 6);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt16LE(DOS_DATE_1980, 14);
    entry.writeUInt32LE(crc, 16);
    const centralExtra = zip64 ? zip64Extra([m.data.length, body.length, offset]) : Buffer.alloc(0);
    entry.writeUInt32LE(zip64 ? 0xffffffff : body.length, 20);
    entry.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt16LE(centralExtra.length, 30);
    entry.writeUInt32LE(zip64 ? 0xffffffff : offset, 42);
    central.push(entry, name, centralExtra);
    offset += local.length + name.length + localExtra.length + body.length;
  }
  const centralBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const eocd64 = Buffer.alloc(56);
    eocd64.writeUInt32LE(0x06064b50, 0);
    eocd64.writeBigUInt64LE(44n, 4);
    eocd64.writeUInt16LE(45, 12);
    eocd64.writeUInt16LE(45, 14);
    eocd64.writeBigUInt64LE(BigInt(members.length), 24);
    eocd64.writeBigUInt64LE(BigInt(members.length), 32);
    eocd64.writeBigUInt64LE(BigInt(centralBytes.length), 40);
    eocd64.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + centralBytes.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(eocd64, locator);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : members.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : members.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : centralBytes.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, centralBytes, ...tail, eocd]);
}

/** Writes arrays as `<key>.npy` members of an npz file, atomically. */
export function writeNpz(file: string, arrays: Record<string, NpyInput>, variant: NpzVariant = 'deflated'): void {
  const members = Object.entries(arrays).map(([key, array]) => ({ name: `${key}.npy`, data: encodeNpy(array) }));
  writeFileAtomic(file, encodeZip(members, variant));
}
