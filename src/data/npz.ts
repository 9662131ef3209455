// An .npz is a zip of .npy members. This reader takes sizes and offsets from the central directory
// (local headers may carry 0xFFFFFFFF placeholders, as ZIP64 files from newer NumPy do), and reads
// one member at a time from an open file handle: a stored member stays on disk and is read row by
// row; a deflated one is inflated from just its own bytes into one buffer.
import { constants as bufferConstants } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { crc32, inflateRaw } from 'node:zlib';
import { DatasetError } from './errors.ts';
import { NPY_PREAMBLE_BYTES, npyDataOffset, parseNpyHeader, type NpyHeader } from './npy.ts';

const inflateRawAsync = promisify(inflateRaw);

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const ZIP64_EXTRA_ID = 0x0001;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

/** One .npy member, readable by rows along its first axis. */
export interface NpyArray {
  /** "archive.npz[member.npy]", for messages. */
  source: string;
  shape: number[];
  /** Bytes of one row (product of the shape after the first axis). */
  rowBytes: number;
  /** Rows [start, start + count) as one C-order buffer. */
  readRows(start: number, count: number): Promise<Uint8Array>;
}

function u64(buf: Buffer, at: number, path: string): number {
  if (at + 8 > buf.length) throw new DatasetError(path, `64-bit zip field at byte ${at} runs past its record (corrupt archive)`);
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DatasetError(path, `64-bit zip field ${v} is beyond any file size (corrupt archive)`);
  return Number(v);
}

/** An array read by rows, whatever holds its bytes: `bytes(offset, length, ...)` from the data start. */
function rowReader(
  source: string,
  header: NpyHeader,
  bytes: (offset: number, length: number, first: number, count: number) => Promise<Uint8Array>,
): NpyArray {
  const rowBytes = rowBytesOf(header.shape);
  return {
    source,
    shape: header.shape,
    rowBytes,
    readRows: async (first, count) => {
      checkRows(header.shape, first, count, source);
      return bytes(first * rowBytes, count * rowBytes, first, count);
    },
  };
}

export class NpzArchive {
  private constructor(
    readonly path: string,
    private readonly file: FileHandle,
    readonly fileSize: number,
    readonly entries: Map<string, ZipEntry>,
  ) {}

  static async open(path: string): Promise<NpzArchive> {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const entries = await readCentralDirectory(file, size, path);
      return new NpzArchive(path, file, size, entries);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /** Member names without the ".npy" suffix, in archive order. */
  arrayNames(): string[] {
    return [...this.entries.keys()].map((n) => n.replace(/\.npy$/, ''));
  }

  private entry(array: string): ZipEntry {
    const entry = this.entries.get(`${array}.npy`) ?? this.entries.get(array);
    if (!entry) {
      throw new DatasetError(this.path, `no member '${array}.npy' (members: ${[...this.entries.keys()].join(', ')})`);
    }
    return entry;
  }

  /** Offset of a member's data: past its local header, whose own lengths decide where that is. */
  private async dataStart(entry: ZipEntry): Promise<number> {
    const header = await this.readExactly(entry.localHeaderOffset, 30, entry, 'local header');
    if (header.readUInt32LE(0) !== SIG_LOCAL) {
      throw new DatasetError(
        this.path,
        `member '${entry.name}': no local header signature at offset ${entry.localHeaderOffset} (corrupt archive)`,
      );
    }
    return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  }

  private async readExactly(offset: number, length: number, entry: ZipEntry, what: string): Promise<Buffer> {
    if (offset + length > this.fileSize) {
      throw new DatasetError(
        this.path,
        `member '${entry.name}': ${what} at offset ${offset} (${length} bytes) runs past the end of the file ` +
          `(${this.fileSize} bytes): truncated archive`,
      );
    }
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.file.read(buf, 0, length, offset);
    if (bytesRead !== length) {
      throw new DatasetError(this.path, `member '${entry.name}': short read of ${what} at offset ${offset}`);
    }
    return buf;
  }

  /** The whole uncompressed member, its CRC-32 checked. */
  async readMember(array: string): Promise<Buffer> {
    const entry = this.entry(array);
    if (entry.uncompressedSize > bufferConstants.MAX_LENGTH) {
      throw new DatasetError(
        this.path,
        `member '${entry.name}' holds ${entry.uncompressedSize} bytes, more than one buffer can hold once inflated; ` +
          're-save the npz uncompressed (numpy.savez) so it is read from disk row by row',
      );
    }
    const start = await this.dataStart(entry);
    const raw = await this.readExactly(start, entry.compressedSize, entry, 'data');
    let data: Buffer;
    if (entry.method === METHOD_STORED) data = raw;
    else {
      try {
        data = await inflateRawAsync(raw);
      } catch (err) {
        throw new DatasetError(
          this.path,
          `member '${entry.name}': corrupt deflate data at offset ${start} (${(err as Error).message})`,
          { cause: err },
        );
      }
    }
    if (data.length !== entry.uncompressedSize) {
      throw new DatasetError(
        this.path,
        `member '${entry.name}' at offset ${start}: inflated to ${data.length} bytes, central directory says ${entry.uncompressedSize}`,
      );
    }
    if (crc32(data) >>> 0 !== entry.crc32) {
      throw new DatasetError(this.path, `member '${entry.name}' at offset ${start}: CRC-32 mismatch (corrupt data)`);
    }
    return data;
  }

  /**
   * A member as an array readable by rows. Stored members are read lazily from disk (so a large
   * uncompressed npz is never held in memory); deflated ones are inflated once and sliced.
   */
  async openArray(array: string): Promise<NpyArray> {
    const entry = this.entry(array);
    const source = `${this.path}[${entry.name}]`;
    if (entry.method === METHOD_STORED) {
      const start = await this.dataStart(entry);
      const preamble = await this.readExactly(start, Math.min(NPY_PREAMBLE_BYTES, entry.compressedSize), entry, 'npy header');
      const header = parseNpyHeader(await this.readExactly(start, npyDataOffset(preamble, source), entry, 'npy header'), source);
      checkDataLength(header, entry.uncompressedSize - header.dataOffset, source);
      const dataStart = start + header.dataOffset;
      return rowReader(source, header, (offset, length, first, count) =>
        this.readExactly(dataStart + offset, length, entry, `rows ${first}..${first + count - 1}`));
    }
    const member = await this.readMember(array);
    const header = parseNpyHeader(member, source);
    checkDataLength(header, member.length - header.dataOffset, source);
    const data = member.subarray(header.dataOffset);
    return rowReader(source, header, async (offset, length) => data.subarray(offset, offset + length));
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

function rowBytesOf(shape: number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

function checkDataLength(header: NpyHeader, available: number, source: string): void {
  if (available !== header.dataBytes) {
    throw new DatasetError(
      source,
      `shape (${header.shape.join(', ')}) needs ${header.dataBytes} data bytes, member holds ${available}`,
    );
  }
}

function checkRows(shape: number[], first: number, count: number, source: string): void {
  const rows = shape[0] ?? 1;
  if (!Number.isInteger(first) || first < 0 || count < 0 || first + count > rows) {
    throw new RangeError(`${source}: rows ${first}..${first + count - 1} out of range 0..${rows - 1}`);
  }
}

async function readAt(file: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await file.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

async function readCentralDirectory(file: FileHandle, size: number, path: string): Promise<Map<string, ZipEntry>> {
  // The end record is the last 22 bytes plus a comment of at most 64 KiB.
  const tailStart = Math.max(0, size - (22 + U16_MAX));
  const tail = await readAt(file, tailStart, size - tailStart);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw await describeMissingEnd(file, size, path);
  let entryCount = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const locator = eocd - 20;
  if (locator >= 0 && tail.readUInt32LE(locator) === SIG_ZIP64_LOCATOR) {
    const z64Offset = u64(tail, locator + 8, path);
    const z64 = await readAt(file, z64Offset, 56);
    if (z64.length < 56 || z64.readUInt32LE(0) !== SIG_ZIP64_EOCD) {
      throw new DatasetError(path, `no ZIP64 end-of-central-directory record at offset ${z64Offset} (corrupt archive)`);
    }
    entryCount = u64(z64, 32, path);
    cdSize = u64(z64, 40, path);
    cdOffset = u64(z64, 48, path);
  }
  if (cdOffset + cdSize > size) {
    throw new DatasetError(
      path,
      `central directory at offset ${cdOffset} (${cdSize} bytes) runs past the end of the file (${size} bytes): truncated archive`,
    );
  }
  const cd = await readAt(file, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let n = 0; n < entryCount; n++) {
    if (at + 46 > cd.length || cd.readUInt32LE(at) !== SIG_CENTRAL) {
      throw new DatasetError(path, `central directory entry ${n} at offset ${cdOffset + at} is malformed (corrupt archive)`);
    }
    const flags = cd.readUInt16LE(at + 8);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    const name = cd.toString('utf8', at + 46, at + 46 + nameLength);
    const entry: ZipEntry = {
      name,
      method: cd.readUInt16LE(at + 10),
      crc32: cd.readUInt32LE(at + 16),
      compressedSize: cd.readUInt32LE(at + 20),
      uncompressedSize: cd.readUInt32LE(at + 24),
      localHeaderOffset: cd.readUInt32LE(at + 42),
    };
    applyZip64Extra(entry, cd.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), path);
    if (flags & 1) throw new DatasetError(path, `member '${name}' is encrypted (not supported)`);
    if (entry.method !== METHOD_STORED && entry.method !== METHOD_DEFLATED) {
      throw new DatasetError(path, `member '${name}' uses compression method ${entry.method} (expected stored or deflated)`);
    }
    entries.set(name, entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** ZIP64 extra field: 64-bit values for exactly those header fields that hold 0xFFFFFFFF, in order. */
function applyZip64Extra(entry: ZipEntry, extra: Buffer, path: string): void {
  let at = 0;
  while (at + 4 <= extra.length) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === ZIP64_EXTRA_ID) {
      let field = at + 4;
      if (entry.uncompressedSize === U32_MAX) {
        entry.uncompressedSize = u64(extra, field, path);
        field += 8;
      }
      if (entry.compressedSize === U32_MAX) {
        entry.compressedSize = u64(extra, field, path);
        field += 8;
      }
      if (entry.localHeaderOffset === U32_MAX) entry.localHeaderOffset = u64(extra, field, path);
      return;
    }
    at += 4 + length;
  }
}

/**
 * Without an end record the file is not a zip or was cut short. Walk the local headers from the
 * start to say which member the file ends in, which is what a user of a half-downloaded npz needs.
 */
async function describeMissingEnd(file: FileHandle, size: number, path: string): Promise<DatasetError> {
  let at = 0;
  let last: { name: string; offset: number } | undefined;
  while (at + 30 <= size) {
    const header = await readAt(file, at, 30);
    if (header.readUInt32LE(0) !== SIG_LOCAL) break;
    const nameLength = header.readUInt16LE(26);
    const extraLength = header.readUInt16LE(28);
    const name = (await readAt(file, at + 30, nameLength)).toString('utf8');
    last = { name, offset: at };
    const compressed = header.readUInt32LE(18);
    const usesDescriptor = (header.readUInt16LE(6) & 8) !== 0;
    if (compressed === U32_MAX || usesDescriptor) break; // size unknown from the local header
    at += 30 + nameLength + extraLength + compressed;
    if (at > size) break;
  }
  if (!last) return new DatasetError(path, `not a zip/npz archive (no end-of-central-directory record, ${size} bytes)`);
  return new DatasetError(
    path,
    `truncated archive (${size} bytes, no end-of-central-directory record): the file ends in or after member ` +
      `'${last.name}' whose local header is at offset ${last.offset}`,
  );
}
