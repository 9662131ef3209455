// onnxruntime sessions, one per kernel shape: each runs one small ONNX graph (a Conv, a
// ConvTranspose, a filter gradient, a MatMul) built in code, created on first use and kept for the
// life of the process (a training run meets the same few dozen shapes every step).
//
// A kernel may offer more than one graph for the same computation (say, a Conv between two
// Transposes, or an im2col and one MatMul). Which runs faster depends on the shape and the
// machine, so the first call of a shape times each candidate on the real inputs, keeps the fastest
// and drops the others (every candidate computes the same values, to float rounding).
import { loadBinding, type OrtSession, type OrtSessionOptions, type OrtTensor } from './binding.ts';
import { encodeModel, type OnnxGraph } from './onnx-model.ts';

/** Threads for every session made from now on: the whole machine unless set (setNativeThreads). */
let intraOpThreads = 0;

/** Sets the threads each ORT session computes with (>= 1); sessions made before keep theirs, so call it first. */
export function setNativeThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`native threads must be a positive integer, got ${threads}`);
  if (threads !== intraOpThreads) clearSessions();
  intraOpThreads = threads;
}

/** The threads the sessions compute with. */
export function nativeThreads(): number {
  return intraOpThreads;
}

function sessionOptions(): OrtSessionOptions {
  return {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    enableMemPattern: true,
    // Idle pool threads sleep instead of spinning: between kernels the wasm backend computes on
    // the main thread, and a spinning pool would take its core.
    extra: { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } },
  };
}

/** One way to compute a kernel: its graph and the names of its inputs and its one output. */
export interface Candidate {
  /** A short label for benchmarks and tests ('conv', 'im2col-matmul'). */
  label: string;
  graph: OnnxGraph;
}

export interface Feeds {
  inputs: Record<string, Float32Array>;
  output: Float32Array;
}

interface Loaded {
  label: string;
  session: OrtSession;
  inputDims: Map<string, readonly number[]>;
  output: { name: string; dims: readonly number[] };
}

interface Entry {
  chosen?: Loaded;
  candidates: readonly Candidate[];
}

const entries = new Map<string, Entry>();

function load(candidate: Candidate): Loaded {
  const binding = loadBinding();
  const session = binding.newSession();
  const bytes = encodeModel(candidate.graph);
  session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, sessionOptions());
  const [output] = candidate.graph.outputs;
  if (output === undefined || candidate.graph.outputs.length !== 1) throw new Error(`native kernel graph '${candidate.label}' must have one output`);
  return {
    label: candidate.label,
    session,
    inputDims: new Map(candidate.graph.inputs.map((input) => [input.name, input.shape])),
    output: { name: output.name, dims: output.shape },
  };
}

function run(loaded: Loaded, feeds: Feeds): void {
  const binding = loadBinding();
  const tensors: Record<string, OrtTensor> = {};
  for (const [name, dims] of loaded.inputDims) {
    const data = feeds.inputs[name];
    if (data === undefined) throw new Error(`native kernel '${loaded.label}': no data for input '${name}'`);
    tensors[name] = binding.tensor(data, dims);
  }
  loaded.session.run(tensors, { [loaded.output.name]: binding.tensor(feeds.output, loaded.output.dims) }, {});
}

/**
 * Runs the computation named `key` on `feeds`, writing its output in place. `candidates` builds
 * the graphs the first time `key` is seen; with several, each is timed once on these feeds and the
 * fastest is kept. The feeds are views that must stay valid during the call (nothing else runs).
 */
export function runCached(key: string, candidates: () => readonly Candidate[], feeds: Feeds): void {
  let entry = entries.get(key);
  if (entry === undefined) {
    entry = { candidates: candidates() };
    entries.set(key, entry);
  }
  if (entry.chosen === undefined) entry.chosen = choose(entry.candidates, feeds);
  run(entry.chosen, feeds);
}

function choose(candidates: readonly Candidate[], feeds: Feeds): Loaded {
  if (candidates.length === 0) throw new Error('native kernel: no graph to run');
  if (candidates.length === 1 || forcedLabel !== undefined) {
    const only = candidates.find((c) => c.label === forcedLabel) ?? candidates[0]!;
    return load(only);
  }
  let best: { loaded: Loaded; ms: number } | undefined;
  for (const candidate of candidates) {
    const loaded = load(candidate);
    run(loaded, feeds); // the first run allocates the session's buffers
    const t0 = performance.now();
    run(loaded, feeds);
    const ms = performance.now() - t0;
    if (best === undefined || ms < best.ms) {
      best?.loaded.session.dispose();
      best = { loaded, ms };
    } else {
      loaded.session.dispose();
    }
  }
  return best!.loaded;
}

let forcedLabel: string | undefined;

/** Tests: always pick the candidate with this label where a kernel offers it (undefined: time them). */
export function forceCandidate(label: string | undefined): void {
  forcedLabel = label;
  clearSessions();
}

/** Which graph each cached shape runs (benchmarks, tests). */
export function chosenGraphs(): Map<string, string> {
  return new Map([...entries].flatMap(([key, entry]) => (entry.chosen ? [[key, entry.chosen.label] as const] : [])));
}

/** Disposes every session (a change of threads, tests). */
export function clearSessions(): void {
  for (const entry of entries.values()) entry.chosen?.session.dispose();
  entries.clear();
}
