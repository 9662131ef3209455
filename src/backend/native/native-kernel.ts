// What every native kernel shares: it runs on the wasm backend, reads its inputs and writes its
// output straight on the wasm heap (Float32Array views handed to onnxruntime, no copies), and hands
// any case it does not plan for back to the kernel that was registered before it (this project's
// wasm kernel, or TF.js's own).
import { tf } from '../../util/tf.ts';
import { withBatchSlices } from './batch-slices.ts';
import { runCached, runsOnWasm, type Candidate, type Feeds, type RanOn, type Slicing } from './sessions.ts';

/** The parts of TF.js's wasm backend these kernels use. */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}

/** How one call runs natively: a cache key for its shape and attributes, its output, its graphs. */
export interface NativePlan {
  key: string;
  outputShape: number[];
  /**
   * The graphs that compute it, each with inputs named as the kernel's inputs and one output, for
   * `batch` images: the call's own batch or, where `batched` allows, a slice of it.
   */
  candidates: (batch: number) => readonly Candidate[];
  /**
   * Where the kernel may run a slice of the batch at a time: the inputs that hold the batch along
   * their first axis, and whether the output does too ('images') or sums over it ('sum').
   */
  batched?: { inputs: readonly string[]; output: Slicing['output'] };
}

/** Decides whether the native path takes a call: a plan, or undefined to run the previous kernel. */
export type Planner<Attrs> = (inputs: Record<string, tf.TensorInfo>, attrs: Attrs) => NativePlan | undefined;

const previousKernels = new Map<string, tf.KernelConfig>();

/** Remembers what ran `kernelName` on wasm before the native kernel (the fallback). */
export function setPreviousKernel(config: tf.KernelConfig): void {
  previousKernels.set(config.kernelName, config);
}

/** The kernel the native one hands unplanned cases to (undefined before installation). */
export function previousKernel(kernelName: string): tf.KernelConfig | undefined {
  return previousKernels.get(kernelName);
}

let nativeCalls = 0;
let fallbackCalls = 0;

/** How many kernel calls ran natively and how many went back to the wasm kernels (tests, benchmarks). */
export function nativeCallCounts(): { native: number; fallback: number } {
  return { native: nativeCalls, fallback: fallbackCalls };
}

function heapView(backend: WasmHeapBackend, info: tf.TensorInfo): Float32Array | undefined {
  const entry = backend.dataIdMap.get(info.dataId);
  if (entry === undefined) return undefined;
  return new Float32Array(backend.wasm.HEAPU8.buffer, entry.memoryOffset, tf.util.sizeFromShape(info.shape));
}

/** A copy of the float32 tensor `info` on the wasm heap, under a new dataId; undefined where `info` is not on it. */
function heapCopy(backend: WasmHeapBackend, info: tf.TensorInfo): tf.TensorInfo | undefined {
  if (backend.dataIdMap.get(info.dataId) === undefined) return undefined;
  const copy = backend.makeOutput([...info.shape], 'float32');
  // Views after makeOutput, which may have grown (and so replaced) the heap's buffer.
  heapView(backend, copy)?.set(heapView(backend, info) ?? []);
  return copy;
}

/**
 * A KernelConfig for 'wasm' that runs `plan`'s graphs, or the previous kernel where it plans
 * nothing. The first call of each shape times the previous (wasm) kernel with the graphs, and where
 * that was the fastest, the shape runs on wasm from then on.
 */
export function nativeKernel<Attrs>(kernelName: string, inputNames: readonly string[], plan: Planner<Attrs>): tf.KernelConfig {
  const fallback = (args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> => {
    const previous = previousKernels.get(kernelName);
    if (previous === undefined) throw new Error(`${kernelName} on native: the wasm kernel it falls back to was not kept at registration`);
    fallbackCalls++;
    return previous.kernelFunc(args);
  };
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const named: Record<string, tf.TensorInfo> = {};
      for (const name of inputNames) {
        const info = args.inputs[name];
        if (info === undefined || info.dtype !== 'float32' || tf.util.sizeFromShape(info.shape) === 0) return fallback(args);
        named[name] = info;
      }
      const planned = plan(named, args.attrs as unknown as Attrs);
      if (planned === undefined || tf.util.sizeFromShape(planned.outputShape) === 0) return fallback(args);
      const key = `${kernelName}|${planned.key}`;
      if (runsOnWasm(key)) return fallback(args);
      const backend = args.backend as unknown as WasmHeapBackend;
      const output = backend.makeOutput(planned.outputShape, 'float32');
      // Views are made for each run: makeOutput (here, or in a timed run of the wasm kernel) may
      // grow, and so replace, the heap's buffer.
      const offHeap = (what: string): Error => new Error(`${kernelName} on native: ${what} is not on the wasm heap`);
      const views = (): Feeds => {
        const inputs: Record<string, Float32Array> = {};
        for (const name of inputNames) {
          const view = heapView(backend, named[name]!);
          if (view === undefined) throw offHeap(`input '${name}'`);
          inputs[name] = view;
        }
        const outputView = heapView(backend, output);
        if (outputView === undefined) throw offHeap('its output');
        return { inputs, output: outputView };
      };
      // The first call of a shape races the wasm kernel against the graphs, discarding its output.
      // The wasm kernel runs on fresh copies of the weights (the inputs that do not hold the
      // batch), and only the kernel is timed: TF.js's wasm kernels keep what they packed of a
      // tensor (a conv's filter) while it lives, which a training step never reuses (its weights
      // change every step), so the rounds after the first would look much faster than training
      // ever sees. The batch-wise inputs, which can be large, are not copied: nothing packs them.
      const timeWasm = (): number => {
        const copies: tf.TensorInfo[] = [];
        try {
          const inputs = { ...args.inputs };
          const weights = inputNames.filter((name) => !(planned.batched?.inputs.includes(name) ?? false));
          for (const name of weights) {
            const copy = heapCopy(backend, named[name]!);
            if (copy === undefined) throw offHeap(`input '${name}'`);
            copies.push((inputs[name] = copy));
          }
          const t0 = performance.now();
          const value = fallback({ ...args, inputs });
          const ms = performance.now() - t0;
          fallbackCalls--;
          for (const info of Array.isArray(value) ? value : [value]) backend.disposeData(info.dataId);
          return ms;
        } finally {
          for (const info of copies) backend.disposeData(info.dataId);
        }
      };
      const candidates = (): readonly Candidate[] => {
        const { batched } = planned;
        if (batched === undefined) return planned.candidates(planned.outputShape[0]!);
        const shapes = batched.inputs.map((name) => named[name]!.shape);
        const batch = shapes[0]![0]!;
        if (batched.output === 'images') shapes.push(planned.outputShape);
        const bytesPerImage = Math.max(...shapes.map((shape) => (4 * tf.util.sizeFromShape(shape)) / batch));
        return withBatchSlices(planned.candidates, { batch, bytesPerImage, batchInputs: batched.inputs, output: batched.output });
      };
      let ranOn: RanOn;
      try {
        ranOn = runCached(key, candidates, views, timeWasm);
      } catch (e) {
        backend.disposeData(output.dataId);
        throw e;
      }
      if (ranOn === 'wasm') {
        backend.disposeData(output.dataId);
        return fallback(args);
      }
      nativeCalls++;
      return output;
    },
  };
}
