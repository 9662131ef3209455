// The .npy format (NumPy's array file): magic "\x93NUMPY", version, a little-endian header length
// (2 bytes in v1, 4 bytes in v2 and v3), then a Python dict literal describing dtype, order and
// shape, padded so the data starts aligned. Only uint8 (and bool) C-order arrays are accepted:
// that is what MedMNIST images and labels are.
import { DatasetError } from './errors.ts';

export interface NpyHeader {
  /** Element type as written in the file, e.g. "|u1". */
  descr: string;
  shape: number[];
  /** Bytes before the data: magic, version, length field and header text. */
  dataOffset: number;
  /** Bytes of data the shape implies (one byte per element for the accepted dtypes). */
  dataBytes: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ONE_BYTE_DTYPES = new Set(['|u1', '<u1', '>u1', '=u1', 'u1', '|b1', '<b1', '>b1', 'b1']);

/** Bytes that must be available to know a header's total length. */
export const NPY_PREAMBLE_BYTES = 12;

/** Total header length (data offset) from the first NPY_PREAMBLE_BYTES bytes. */
export function npyDataOffset(preamble: Uint8Array, source: string): number {
  if (preamble.length < 10 || MAGIC.some((b, i) => preamble[i] !== b)) {
    throw new DatasetError(source, 'not an .npy array (missing \\x93NUMPY magic)');
  }
  const major = preamble[6];
  const view = new DataView(preamble.buffer, preamble.byteOffset, preamble.byteLength);
  if (major === 1) return 10 + view.getUint16(8, true);
  if (major === 2 || major === 3) {
    if (preamble.length < 12) throw new DatasetError(source, 'truncated .npy header');
    return 12 + view.getUint32(8, true);
  }
  throw new DatasetError(source, `unsupported .npy format version ${major}.${preamble[7]} (expected 1, 2 or 3)`);
}

/** Parse the header of an .npy array whose first bytes (at least the whole header) are given. */
export function parseNpyHeader(bytes: Uint8Array, source: string): NpyHeader {
  const dataOffset = npyDataOffset(bytes, source);
  if (bytes.length < dataOffset) {
    throw new DatasetError(source, `truncated .npy header: needs ${dataOffset} bytes, has ${bytes.length}`);
  }
  const textStart = bytes[6] === 1 ? 10 : 12;
  // v3 allows UTF-8 in the header; v1 and v2 are latin1, a subset for the keys we read.
  const text = new TextDecoder('utf-8').decode(bytes.subarray(textStart, dataOffset));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new DatasetError(source, `malformed .npy header ${JSON.stringify(text.trim())}`);
  }
  if (fortran === 'True') {
    throw new DatasetError(source, 'Fortran-order array is not supported (expected C order; save with np.ascontiguousarray)');
  }
  if (!ONE_BYTE_DTYPES.has(descr)) {
    throw new DatasetError(source, `unsupported dtype '${descr}' (expected uint8 '|u1')`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) throw new DatasetError(source, `bad dimension '${s}' in .npy shape`);
      return n;
    });
  const dataBytes = shape.reduce((a, b) => a * b, 1);
  return { descr, shape, dataOffset, dataBytes };
}
