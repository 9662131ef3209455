// The wasm backend's 4 GB ceiling: how much of it is in use, and turning running out of it into an
// error a user can act on.
//
// The wasm heap is one WebAssembly.Memory of at most 4 GB per process (wasm32) and it never
// shrinks. Running out shows up in three ways:
//  1. a tensor allocation from JS (the backend calls the module's `_malloc`) gets a null pointer.
//     Stock TF.js does not check for it and writes the tensor over address 0, corrupting the heap;
//     the guard installed by installWasmMemoryGuard throws WasmOutOfMemoryError instead, before
//     anything is written, and the module stays usable (free tensors and retry smaller);
//  2. an allocation inside C++ fails. Where the C++ calls abort(), emscripten throws a
//     WebAssembly.RuntimeError "Aborted(...)" and the module is dead: every later wasm op throws
//     "Aborted()" again. Where it does not check (XNNPACK packing weights into a full heap, seen
//     with TF.js 4.22), it runs on with a bad pointer and traps: a WebAssembly.RuntimeError
//     "memory access out of bounds", after which C++ state may be half-updated. Either way the
//     process (worker) must exit and be restarted: WasmOutOfMemoryError.moduleAborted is true;
//  3. growing the memory itself fails in the JS engine: a RangeError.
// translateBackendError maps these to WasmOutOfMemoryError with the advice below. A trap is only
// taken for lack of memory when the heap is near its cap; otherwise it is passed on unchanged.
import { tf } from '../util/tf.ts';

/** emscripten's heap maximum for this wasm32 build (getHeapMax in tfjs-backend-wasm): 4 GiB - 64 KiB. */
export const WASM_HEAP_LIMIT_BYTES = 4294901760;

interface WasmModule {
  HEAPU8: Uint8Array;
  _malloc: (bytes: number) => number;
  onAbort?: (what: unknown) => void;
}

const guardedModules = new WeakSet<WasmModule>();
let moduleAborted = false;

/** The live emscripten module when the active backend is wasm. */
function activeWasmModule(): WasmModule | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as { wasm: WasmModule }).wasm;
}

function mebibytes(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MB`;
}

export class WasmOutOfMemoryError extends Error {
  constructor(
    /** What was running, e.g. "train step 12 (micro-batch 16 at 256x256)". */
    readonly context: string,
    /** True when the module aborted or trapped: no further wasm op can be trusted in this process. */
    readonly moduleAborted: boolean,
    options?: { cause?: unknown },
  ) {
    const heap = activeWasmModule()?.HEAPU8.length;
    super(
      `wasm backend ran out of its 4 GB memory during ${context}; lower train.micro_batch ` +
        `(e.g. 4 at 256x256; train.micro_batch: auto picks it from train.memory_budget_mb) or use more workers` +
        (heap === undefined ? '' : ` (wasm heap ${mebibytes(heap)})`) +
        (moduleAborted ? '. The wasm module has failed and cannot be trusted with more work: restart the process' : ''),
      options,
    );
    this.name = 'WasmOutOfMemoryError';
  }
}

/**
 * Makes the active wasm module throw WasmOutOfMemoryError when a tensor allocation fails instead
 * of silently returning address 0, and records emscripten aborts. Called by initBackend; idempotent.
 */
export function installWasmMemoryGuard(): void {
  const wasm = activeWasmModule();
  if (wasm === undefined || guardedModules.has(wasm)) return;
  guardedModules.add(wasm);
  // emscripten's export starts as a stub that, on first call, overwrites Module._malloc with the
  // raw export; an accessor keeps our check in front of whatever is assigned.
  let malloc = wasm._malloc;
  const guarded = (bytes: number): number => {
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) {
      throw new WasmOutOfMemoryError(`allocating a ${mebibytes(bytes)} tensor`, false);
    }
    return address;
  };
  Object.defineProperty(wasm, '_malloc', {
    configurable: true,
    enumerable: true,
    get: () => guarded,
    set: (replacement: (bytes: number) => number) => {
      malloc = replacement;
    },
  });
  const onAbort = wasm.onAbort;
  wasm.onAbort = (what: unknown) => {
    moduleAborted = true;
    onAbort?.(what);
  };
}

/**
 * True once emscripten has aborted in this process, or translateBackendError has seen a wasm trap
 * it blamed on memory: the wasm backend can no longer be trusted to run ops.
 */
export function wasmModuleAborted(): boolean {
  return moduleAborted;
}

/** The wasm module trapped ("memory access out of bounds", "unreachable") below the heap cap. */
export class WasmTrapError extends Error {
  constructor(
    readonly context: string,
    cause: WebAssembly.RuntimeError,
  ) {
    const heap = activeWasmModule()?.HEAPU8.length;
    super(
      `wasm backend failed during ${context}: ${cause.message}` +
        (heap === undefined ? '' : ` (wasm heap ${mebibytes(heap)})`) +
        `. With large images this is how a kernel's failed allocation shows: lower train.micro_batch ` +
        `(train.micro_batch: auto picks it from train.memory_budget_mb) or use more workers. ` +
        `The wasm module cannot be trusted with more work: restart the process (--resume continues from the last checkpoint)`,
      { cause },
    );
    this.name = 'WasmTrapError';
  }
}

/**
 * A heap this full is where a failed allocation inside the C++ kernels (XNNPACK's scratch buffers
 * are allocated there, not through the guarded _malloc) shows up as an out-of-bounds trap, so such
 * a trap is reported as running out of memory. (The 256x256 micro-batch-8 trap first read this way
 * was an XNNPACK average-pool bug, now avoided: see wasm-kernels/sum.ts.)
 */
const NEAR_CAP_FRACTION = 0.5;

const memoryRangeError =
  /Array buffer allocation failed|Invalid typed array length|Invalid array buffer length|WebAssembly\.Memory|Maximum memory size/i;

/**
 * The error to report for `e`, thrown while doing `context` (e.g. "train step 12"): wasm
 * out-of-memory conditions become WasmOutOfMemoryError naming the context; anything else is
 * returned unchanged (non-Error values wrapped in an Error).
 */
export function translateBackendError(e: unknown, context: string): Error {
  if (e instanceof WasmOutOfMemoryError) {
    return new WasmOutOfMemoryError(`${context} (${e.context})`, e.moduleAborted, { cause: e });
  }
  const wasm = activeWasmModule();
  const onWasm = wasm !== undefined;
  if (onWasm && e instanceof WebAssembly.RuntimeError && e.message.startsWith('Aborted(')) {
    moduleAborted = true;
    return new WasmOutOfMemoryError(context, true, { cause: e });
  }
  if (
    onWasm &&
    e instanceof WebAssembly.RuntimeError &&
    e.message.startsWith('memory access out of bounds') &&
    wasm.HEAPU8.length >= NEAR_CAP_FRACTION * WASM_HEAP_LIMIT_BYTES
  ) {
    moduleAborted = true;
    return new WasmOutOfMemoryError(context, true, { cause: e });
  }
  if (onWasm && e instanceof WebAssembly.RuntimeError) {
    // A trap with room left under the cap: at large images and micro-batches a kernel's own
    // allocation failing looks exactly like this, so say what usually helps, and that the module
    // cannot be trusted any more.
    moduleAborted = true;
    return new WasmTrapError(context, e);
  }
  if (onWasm && e instanceof RangeError && memoryRangeError.test(e.message)) {
    return new WasmOutOfMemoryError(context, moduleAborted, { cause: e });
  }
  return e instanceof Error ? e : new Error(`${context}: ${String(e)}`);
}

/** Runs `work`, rethrowing its failure through translateBackendError(·, context). */
export async function withBackendErrors<T>(context: string, work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw translateBackendError(e, context);
  }
}

/**
 * Bytes the backend holds, for metrics: on wasm the heap size (what counts against the 4 GB cap;
 * it only grows), elsewhere the bytes of live tensors as TF.js counts them.
 */
export function backendMemoryBytes(): number {
  return activeWasmModule()?.HEAPU8.length ?? tf.memory().numBytes;
}
