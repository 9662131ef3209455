// The all-reduce's arithmetic, dst += received (and on a segment's last addition dst = (dst + received) / w),
// in WebAssembly SIMD: four floats per instruction where a JavaScript loop does one, about 3x faster
// per byte even counting the copies in and out of wasm memory. Received chunks are read straight into
// wasm memory (`staging`), so only the destination piece is copied in and the sum copied back.
// f32x4.add rounds each sum to float32 exactly as a Float32Array store does; the division happens once
// per element on one rank, so every rank still ends with the same bits.

/** Unsigned LEB128, the integer encoding of the wasm binary format. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]): number[] => [id, ...leb(bytes.length), ...bytes];
const name = (s: string): number[] => [...leb(s.length), ...Buffer.from(s, 'ascii')];

const I32 = 0x7f;
const F32 = 0x7d;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const SIMD = 0xfd;
const F32X4_ADD = leb(228);
const F32X4_DIV = leb(231);
const F32X4_SPLAT = leb(0x13);

/**
 * fn(dst, src, bytes[, divisor]): over 16-byte lanes from dst and src up to dst+bytes (rounded up to 16),
 * dst = dst + src, then divided by the splatted divisor when `divide`. Params 0..2 (and 3), one local i32 `end`.
 */
function reduceFunction(divide: boolean): number[] {
  const end = divide ? 4 : 3;
  const v128Load = [SIMD, 0x00, 0x02, 0x00]; // align 2^2, offset 0
  const v128Store = [SIMD, 0x0b, 0x02, 0x00];
  const code = [
    LOCAL_GET, 0, LOCAL_GET, 2, 0x6a, LOCAL_SET, end, // end = dst + bytes
    0x02, 0x40, // block
    LOCAL_GET, 0, LOCAL_GET, end, 0x4f, 0x0d, 0, // if dst >= end: break
    0x03, 0x40, // loop
    LOCAL_GET, 0,
    LOCAL_GET, 0, ...v128Load,
    LOCAL_GET, 1, ...v128Load,
    SIMD, ...F32X4_ADD,
    ...(divide ? [LOCAL_GET, 3, SIMD, ...F32X4_SPLAT, SIMD, ...F32X4_DIV] : []),
    ...v128Store,
    LOCAL_GET, 0, 0x41, 16, 0x6a, LOCAL_SET, 0, // dst += 16
    LOCAL_GET, 1, 0x41, 16, 0x6a, LOCAL_SET, 1, // src += 16
    LOCAL_GET, 0, LOCAL_GET, end, 0x49, 0x0d, 0, // while dst < end
    0x0b, // end loop
    0x0b, // end block
    0x0b, // end function
  ];
  const body = [...vec([[1, I32]]), ...code];
  return [...leb(body.length), ...body];
}

/** Exports memory (1 page to start), add(dst, src, bytes) and addDivide(dst, src, bytes, divisor). */
const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), 0], [0x60, ...vec([[I32], [I32], [I32], [F32]]), 0]])),
  ...section(3, vec([[0], [1]])),
  ...section(5, vec([[0x00, 1]])),
  ...section(7, vec([[...name('memory'), 0x02, 0], [...name('add'), 0x00, 0], [...name('addDivide'), 0x00, 1]])),
  ...section(10, vec([reduceFunction(false), reduceFunction(true)])),
]);

let compiled: WebAssembly.Module | null = null;

interface KernelExports {
  memory: WebAssembly.Memory;
  add(dst: number, src: number, bytes: number): void;
  addDivide(dst: number, src: number, bytes: number, divisor: number): void;
}

const LANE_BYTES = 16;
const PAGE_BYTES = 65536;

function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** One rank's reduction scratch: `staging` receives a chunk, addInto() adds a part of it into place. */
export class ReduceKernel {
  /** Where a received chunk lands (inside wasm memory). */
  readonly staging: Float32Array;
  private readonly scratch: Float32Array;
  private readonly scratchAt: number;
  private readonly exports: KernelExports;

  constructor(chunkElements: number) {
    compiled ??= new WebAssembly.Module(MODULE_BYTES);
    this.exports = new WebAssembly.Instance(compiled).exports as unknown as KernelExports;
    // Each region is followed by a lane of slack: the loop works in whole lanes, past a piece's end.
    const regionBytes = roundUp(chunkElements * 4, LANE_BYTES) + LANE_BYTES;
    this.scratchAt = regionBytes;
    const pages = Math.ceil((2 * regionBytes) / PAGE_BYTES);
    const memory = this.exports.memory;
    memory.grow(Math.max(0, pages - memory.buffer.byteLength / PAGE_BYTES));
    // The memory never grows again, so these views stay attached.
    this.staging = new Float32Array(memory.buffer, 0, chunkElements);
    this.scratch = new Float32Array(memory.buffer, this.scratchAt, chunkElements);
  }

  /**
   * dst[i] += staging[stagingOffset + i], then (when `divisor` is given) dst[i] /= divisor. dst is at most
   * a chunk long. The sum is rounded to float32 before the division.
   */
  addInto(dst: Float32Array, stagingOffset: number, divisor?: number): void {
    const n = dst.length;
    if (n === 0) return;
    if (stagingOffset < 0 || stagingOffset + n > this.staging.length) {
      throw new RangeError(`addInto: ${n} floats at staging offset ${stagingOffset} exceed the ${this.staging.length}-float chunk`);
    }
    const place = this.scratch.subarray(0, n);
    place.set(dst);
    if (divisor === undefined) this.exports.add(this.scratchAt, stagingOffset * 4, n * 4);
    else this.exports.addDivide(this.scratchAt, stagingOffset * 4, n * 4, divisor);
    dst.set(place);
  }
}
