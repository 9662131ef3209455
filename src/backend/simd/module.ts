// Loads kernels.wasm (built from kernels.wat by `npm run build:wasm`) into the process,
// instantiated on the TF.js wasm backend's own memory so that its functions read and write tensors
// in place (no copies in or out). Pointers passed to these functions are heap byte offsets from
// wasmHeapOffset().
import { tf } from '../../util/tf.ts';
import { loadWasmModule, type CheckedWasmModule, type WasmExportSpec } from '../../util/wasm-module.ts';

export interface SimdKernels {
  leaky_relu(x: number, y: number, n: number, alpha: number): void;
  leaky_relu_grad(dy: number, x: number, dx: number, n: number, alpha: number): void;
  channel_sum(x: number, rows: number, channels: number, out: number): void;
  channel_squared_deviation_sum(x: number, center: number, rows: number, channels: number, out: number): void;
  channel_sum_and_dot(dy: number, x: number, center: number, rows: number, channels: number, sums: number, dots: number): void;
  channel_affine(u: number, v: number, a: number, b: number, k: number, y: number, rows: number, channels: number, withV: number): void;
  transpose(x: number, y: number, rows: number, cols: number): void;
  transpose_blocks(x: number, y: number, rows: number, cols: number, block: number): void;
  filter_grad(
    vec: number,
    scal: number,
    images: number,
    outRows: number,
    vecImageBytes: number,
    vecRowBytes: number,
    vecColBytes: number,
    scalImageBytes: number,
    scalRowBytes: number,
    scalColBytes: number,
    table: number,
    passes: number,
    sums: number,
    laneBytes: number,
    pairOutBytes: number,
  ): void;
  col2im(
    cols: number,
    dx: number,
    images: number,
    outRows: number,
    outCols: number,
    rows: number,
    width: number,
    channels: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
  ): void;
  adam(
    p: number,
    g: number,
    m: number,
    v: number,
    pOut: number,
    mOut: number,
    vOut: number,
    n: number,
    decay: number,
    wd: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    step: number,
    eps: number,
  ): void;
}

const [i32, f32] = ['i32', 'f32'] as const;

/** SimdKernels as kernels.wat defines it; checked against the module when it is loaded. */
const SIMD_EXPORTS: WasmExportSpec<SimdKernels> = {
  leaky_relu: [i32, i32, i32, f32],
  leaky_relu_grad: [i32, i32, i32, i32, f32],
  channel_sum: [i32, i32, i32, i32],
  channel_squared_deviation_sum: [i32, i32, i32, i32, i32],
  channel_sum_and_dot: [i32, i32, i32, i32, i32, i32, i32],
  channel_affine: [i32, i32, i32, i32, i32, i32, i32, i32, i32],
  transpose: [i32, i32, i32, i32],
  transpose_blocks: [i32, i32, i32, i32, i32],
  filter_grad: [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32],
  col2im: [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32],
  adam: [i32, i32, i32, i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, f32, f32, f32],
};

/** The parts of TF.js's wasm backend these kernels touch (internals, checked when loaded). */
interface WasmBackendInternals {
  wasm: { asm?: { memory?: unknown } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
}

/** What kernels writing into the heap need of the wasm backend: outputs allocated there, and freed. */
export interface WasmKernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

export class SimdKernelError extends Error {
  override name = 'SimdKernelError';
}

let compiled: CheckedWasmModule<SimdKernels> | undefined;
let instance: { memory: WebAssembly.Memory; kernels: SimdKernels } | undefined;

function wasmBackend(): WasmBackendInternals {
  if (tf.getBackend() !== 'wasm') throw new SimdKernelError(`SIMD kernels run on the wasm backend, the active one is '${tf.getBackend()}'`);
  return tf.backend() as unknown as WasmBackendInternals;
}

/**
 * Instantiates the kernels on the active wasm backend's memory (compiled once per process, then
 * once per backend memory). Throws WasmLoadError or WasmExportError when kernels.wasm is missing,
 * invalid or does not match SimdKernels.
 */
export async function loadSimdKernels(): Promise<SimdKernels> {
  const memory = wasmBackend().wasm.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new SimdKernelError('the TF.js wasm module does not export its memory (wasm.asm.memory): this TF.js version is not supported');
  }
  if (instance?.memory === memory) return instance.kernels;
  compiled ??= loadWasmModule(new URL('./kernels.wasm', import.meta.url), 'SimdKernels', SIMD_EXPORTS);
  const kernels = compiled.instantiate({ tfjs: { memory } });
  instance = { memory, kernels };
  return kernels;
}

/** The kernels instantiated on the active backend's memory, or undefined before loadSimdKernels(). */
export function simdKernels(): SimdKernels | undefined {
  if (tf.getBackend() !== 'wasm' || instance === undefined) return undefined;
  return instance.memory === (tf.backend() as unknown as WasmBackendInternals).wasm.asm?.memory ? instance.kernels : undefined;
}

/** Heap byte offset of a wasm tensor's data. */
export function wasmHeapOffset(info: tf.TensorInfo): number {
  const entry = wasmBackend().dataIdMap.get(info.dataId);
  if (entry === undefined) throw new SimdKernelError(`tensor of shape [${info.shape.join(',')}] has no data on the wasm backend`);
  return entry.memoryOffset;
}
