// The all-reduce's arithmetic, dst += received (and on a segment's last addition dst = (dst + received) / w),
// in WebAssembly SIMD (reduce-kernel.wat, built to reduce-kernel.wasm by `npm run build:wasm`): four
// floats per instruction where a JavaScript loop does one, faster per byte even counting the copies in
// and out of wasm memory. Received chunks are read straight into wasm memory (`staging`), so only the
// destination piece is copied in and the sum copied back.
import { loadWasmModule, type CheckedWasmModule, type WasmExportSpec } from '../util/wasm-module.ts';

interface KernelExports {
  memory: WebAssembly.Memory;
  add(dst: number, src: number, bytes: number): void;
  addDivide(dst: number, src: number, bytes: number, divisor: number): void;
}

/** KernelExports as reduce-kernel.wat defines it; checked against the module when it is loaded. */
const EXPORTS: WasmExportSpec<KernelExports> = {
  memory: 'memory',
  add: ['i32', 'i32', 'i32'],
  addDivide: ['i32', 'i32', 'i32', 'f32'],
};

let compiled: CheckedWasmModule<KernelExports> | undefined;

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
    compiled ??= loadWasmModule(new URL('./reduce-kernel.wasm', import.meta.url), 'ReduceKernel', EXPORTS);
    this.exports = compiled.instantiate();
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
