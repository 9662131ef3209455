// onnxruntime sessions, one per kernel shape: each runs one small ONNX graph (a Conv, a
// ConvTranspose, a filter gradient, a MatMul) built in code, created on first use and kept for the
// life of the process (a training run meets the same few dozen shapes every step).
//
// A kernel may offer more than one graph for the same computation (say, a Conv between two
// Transposes, or an im2col and one MatMul). Every candidate computes the same values to float
// rounding, but not the same bits. Which graph a shape runs comes, in this order, from the run's
// plan (./run-plan.ts); in deterministic runs from a fixed rule (fixedChoice: a fixed order of
// graphs, never the wasm kernel); else from the machine's remembered choices (./choices.ts) or a race that
// times each candidate on the real inputs and keeps the fastest. A candidate may run over a large
// batch a slice at a time (./batch-slices.ts), with a second session for a smaller last slice.
import { loadBinding, type OrtSession, type OrtSessionOptions, type OrtTensor } from './binding.ts';
import { openChoices, recall, remember } from './choices.ts';
import { freeArrayBuffer } from './free-buffer.ts';
import { encodeModel, type OnnxGraph } from './onnx-model.ts';
import { deterministicChoices, plannedChoice, planKey, recordChoice, type PlannedChoice } from './run-plan.ts';

/** Threads for every session made from now on: the whole machine unless set (setNativeThreads). */
let intraOpThreads = 0;

/** Sets the threads each ORT session computes with (>= 1); sessions made before keep theirs, so call it first. */
export function setNativeThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`native threads must be a positive integer, got ${threads}`);
  if (threads !== intraOpThreads) clearSessions();
  intraOpThreads = threads;
  openChoices(threads, loadBinding().version);
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
    // No arena: each session would keep its own high-water mark of intermediates, and a model
    // meets dozens of shapes (VAE-GAN's resident memory grew several-fold). Freed buffers go back
    // at once; measured, the step took no longer.
    enableCpuMemArena: false,
    enableMemPattern: false,
    // Errors only: a session's notes on the graph (unused initializers and such) are no one's business.
    logSeverityLevel: 3,
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
  /** Run over the batch a slice at a time (./batch-slices.ts): `graph` computes one slice. */
  slicing?: Slicing;
}

/** How a candidate cuts the batch: every slice but the last has `slice` images. */
export interface Slicing {
  batch: number;
  slice: number;
  /** The inputs cut along the batch; the others (a filter) go whole to each slice. */
  batchInputs: readonly string[];
  /** 'images': the output is cut along the batch as they are; 'sum': it is the sum over the slices (a filter gradient). */
  output: 'images' | 'sum';
  /** The graph of the last slice, where it is smaller than `slice`. */
  last?: OnnxGraph;
}

export interface Feeds {
  inputs: Record<string, Float32Array>;
  output: Float32Array;
}

/** A graph's session with the names and dims of what it reads and writes. */
interface Part {
  session: OrtSession;
  inputDims: Map<string, readonly number[]>;
  output: { name: string; dims: readonly number[] };
}

interface Loaded {
  label: string;
  part: Part;
  /** For a sliced candidate: the slicing, and the last slice's part where its graph differs. */
  slicing?: Slicing;
  last?: Part;
  /** For a summed output: where each slice after the first writes its share before it is added (made at the first call). */
  scratch?: Float32Array;
}

interface Entry {
  chosen?: Loaded;
  candidates: readonly Candidate[];
}

const entries = new Map<string, Entry>();

/** A session of `graph`, with the kernels' options and any `overrides`. The caller disposes it. */
export function openSession(graph: OnnxGraph, overrides: Partial<OrtSessionOptions> = {}): OrtSession {
  const session = loadBinding().newSession();
  try {
    const bytes = encodeModel(graph);
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, { ...sessionOptions(), ...overrides });
  } catch (e) {
    session.dispose();
    throw e;
  }
  return session;
}

function loadPart(graph: OnnxGraph, label: string, threads: number): Part {
  const [output] = graph.outputs;
  if (output === undefined || graph.outputs.length !== 1) throw new Error(`native kernel graph '${label}' must have one output`);
  return {
    session: openSession(graph, { intraOpNumThreads: threads }),
    inputDims: new Map(graph.inputs.map((input) => [input.name, input.shape])),
    output: { name: output.name, dims: output.shape },
  };
}

/** Sessions of `candidate`'s graphs, computing with `threads` threads (the process's unless given). */
function load(candidate: Candidate, threads: number = intraOpThreads): Loaded {
  const { label, slicing } = candidate;
  const part = loadPart(candidate.graph, label, threads);
  if (slicing?.last === undefined) return { label, part, slicing };
  try {
    return { label, part, slicing, last: loadPart(slicing.last, label, threads) };
  } catch (e) {
    part.session.dispose();
    throw e;
  }
}

function dispose(loaded: Loaded): void {
  loaded.part.session.dispose();
  loaded.last?.session.dispose();
}

function runPart(part: Part, inputs: Record<string, Float32Array>, output: Float32Array, label: string): void {
  const binding = loadBinding();
  const tensors: Record<string, OrtTensor> = {};
  for (const [name, dims] of part.inputDims) {
    const data = inputs[name];
    if (data === undefined) throw new Error(`native kernel '${label}': no data for input '${name}'`);
    tensors[name] = binding.tensor(data, dims);
  }
  const returned = part.session.run(tensors, { [part.output.name]: binding.tensor(output, part.output.dims) }, {});
  // The binding hands back a copy of the output it wrote in place: free it now, unless it is the
  // caller's own memory (a binding that returned the given buffer itself).
  for (const { data } of Object.values(returned)) {
    if (data.buffer !== output.buffer && data.buffer instanceof ArrayBuffer) freeArrayBuffer(data.buffer);
  }
}

function run(loaded: Loaded, feeds: Feeds): void {
  const { slicing } = loaded;
  if (slicing === undefined) {
    runPart(loaded.part, feeds.inputs, feeds.output, loaded.label);
    return;
  }
  const { batch, slice, batchInputs, output } = slicing;
  for (let start = 0; start < batch; start += slice) {
    const end = Math.min(batch, start + slice);
    const cut = (whole: Float32Array): Float32Array => {
      const perImage = whole.length / batch;
      return whole.subarray(start * perImage, end * perImage);
    };
    const inputs = { ...feeds.inputs };
    for (const name of batchInputs) {
      const whole = inputs[name];
      if (whole !== undefined) inputs[name] = cut(whole);
    }
    const part = end - start === slice ? loaded.part : loaded.last;
    if (part === undefined) throw new Error(`native kernel '${loaded.label}': no graph for its last slice of ${end - start}`);
    if (output === 'images') {
      runPart(part, inputs, cut(feeds.output), loaded.label);
    } else if (start === 0) {
      // A summed output: the first slice writes it, each later one the scratch, added into it.
      runPart(part, inputs, feeds.output, loaded.label);
    } else {
      const scratch = (loaded.scratch ??= new Float32Array(feeds.output.length));
      runPart(part, inputs, scratch, loaded.label);
      const sum = feeds.output;
      for (let i = 0; i < sum.length; i++) sum[i]! += scratch[i]!;
    }
  }
}

/** What a call of runCached computed its output with: a graph, or the wasm kernel (the caller runs it). */
export type RanOn = 'graph' | 'wasm';

/**
 * Runs the computation named `key` on the feeds that `views` makes, writing its output in place.
 * The first time `key` is seen, `candidates` builds its graphs and one is chosen: the run's plan's
 * choice; in deterministic runs the fixed rule (fixedChoice); else the machine's remembered choice
 * (choices.ts), or a race of the graphs and `wasm` (a run of the wasm kernel that discards its
 * output and returns the milliseconds the kernel itself took) on these feeds. What is chosen
 * anew is added to the run's plan. Returns 'wasm' when that is the wasm kernel: the output was not
 * written, and the caller runs the wasm kernel for it. `views` is called before each run: a run of
 * the wasm kernel may grow (and so replace) the heap the views are on.
 */
export function runCached(key: string, candidates: () => readonly Candidate[], views: () => Feeds, wasm?: () => number): RanOn {
  let entry = entries.get(key);
  if (entry === undefined) {
    entry = { candidates: candidates() };
    entries.set(key, entry);
  }
  if (entry.chosen !== undefined) {
    run(entry.chosen, views());
    return 'graph';
  }
  if (forcedLabel !== undefined) return runForced(entry, views);
  const inPlan = planKey(key, intraOpThreads);
  const planned = plannedChoice(inPlan);
  // A planned graph this machine does not offer (another CPU's channel blocks) is chosen again.
  const plannedCandidate = planned === undefined ? undefined : pick(entry.candidates, planned.graph);
  if (planned !== undefined && plannedCandidate !== undefined) {
    entry.chosen = load(plannedCandidate, planned.threads);
  } else if (deterministicChoices()) {
    const { loaded, threads } = fixedChoice(entry.candidates, views);
    entry.chosen = loaded;
    recordChoice(inPlan, { graph: loaded.label, threads, by: 'rule' });
  } else {
    const known = pick(entry.candidates, recall(key));
    if (known !== undefined) {
      entry.chosen = load(known);
    } else {
      const winner = race(entry.candidates, views, wasm);
      if (winner === WASM) {
        chooseWasm(key, inPlan);
        return 'wasm';
      }
      entry.chosen = winner;
      remember(key, winner.label);
      recordChoice(inPlan, { graph: winner.label, threads: intraOpThreads, by: 'timed' });
      return 'graph';
    }
    recordChoice(inPlan, { graph: entry.chosen.label, threads: intraOpThreads, by: 'timed' });
  }
  run(entry.chosen, views());
  return 'graph';
}

/** runCached under forceCandidate: the forced graph, else a race of the graphs alone; nothing remembered or planned. */
function runForced(entry: Entry, views: () => Feeds): RanOn {
  const known = pick(entry.candidates, forcedLabel);
  if (known !== undefined) {
    entry.chosen = load(known);
    run(entry.chosen, views());
    return 'graph';
  }
  // The race leaves the winner's values in the output; without the wasm kernel it is a graph.
  const winner = race(entry.candidates, views, undefined);
  if (winner === WASM) return 'wasm';
  entry.chosen = winner;
  return 'graph';
}

/**
 * The fixed choice of deterministic runs: the first graph, PREFERRED ones first, that this
 * onnxruntime loads, never the wasm kernel, and no timing. onnxruntime's GEMMs split their columns among the threads, and a narrower split changes
 * how they block the sum (measured: a [64, 2048] x [2048, 128] product differs at 2 threads from 1):
 * where the process computes with several threads, the graph is run once on made-up inputs with
 * them and with one, and where the bits differ, the shape runs on one thread. So a deterministic
 * run computes the bits of the chosen graphs on one thread, whatever its thread count.
 */
function fixedChoice(candidates: readonly Candidate[], views: () => Feeds): { loaded: Loaded; threads: number } {
  let failure: unknown = new Error('native kernel: no graph to run');
  for (const candidate of byPreference(candidates)) {
    let loaded: Loaded;
    try {
      loaded = load(candidate);
    } catch (e) {
      // A graph this onnxruntime cannot load (one of its internal ops changed): the next one.
      failure = e;
      continue;
    }
    if (intraOpThreads === 1) return { loaded, threads: 1 };
    const single = load(candidate, 1);
    if (sameBits(loaded, single, views())) {
      dispose(single);
      return { loaded, threads: intraOpThreads };
    }
    dispose(loaded);
    return { loaded: single, threads: 1 };
  }
  throw failure;
}

/**
 * Graphs a deterministic run prefers where a kernel offers them, first to last: those that won
 * most races at 2 threads on the models' shapes (the blocked-channel forms, a GEMM per filter tap).
 */
const PREFERRED = ['nchwc', 'phase-split', 'phase-nchwc', 'tap-gemm'];

/** `candidates` with the PREFERRED graphs first (in its order), the others after in the kernel's order. */
function byPreference(candidates: readonly Candidate[]): Candidate[] {
  const rank = (c: Candidate): number => {
    const i = PREFERRED.indexOf(c.label.split('/')[0]!);
    return i === -1 ? PREFERRED.length : i;
  };
  return [...candidates].sort((a, b) => rank(a) - rank(b));
}

/** Whether `a` and `b` compute the same bits on made-up inputs the size of `like`'s (values in [-1, 1), a fixed sequence). */
function sameBits(a: Loaded, b: Loaded, like: Feeds): boolean {
  let state = 1;
  const made = (length: number): Float32Array => {
    const values = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      values[i] = state / 2 ** 31 - 1;
    }
    return values;
  };
  const inputs = Object.fromEntries(Object.entries(like.inputs).map(([name, data]) => [name, made(data.length)]));
  const outputs = [a, b].map((loaded) => {
    const output = new Float32Array(like.output.length);
    run(loaded, { inputs, output });
    return new Uint32Array(output.buffer);
  });
  const [x, y] = outputs as [Uint32Array, Uint32Array];
  return x.every((bits, i) => bits === y[i]);
}

/** Shapes that run on the wasm kernel (timed faster than the best graph): they stay on wasm. */
const onWasm = new Set<string>();

/** Runs `key` on the wasm kernel from now on, remembered and planned (as `inPlan`), and ends its session (its buffers go back). */
function chooseWasm(key: string, inPlan: string): void {
  const chosen = entries.get(key)?.chosen;
  if (chosen !== undefined) dispose(chosen);
  entries.delete(key);
  onWasm.add(key);
  remember(key, WASM);
  recordChoice(inPlan, { graph: WASM, threads: intraOpThreads, by: 'timed' });
}

/** The label of the wasm kernel among the choices. */
export const WASM = 'wasm';

/** Whether `key` runs on the wasm kernel: planned so, timed or remembered so (except in deterministic runs), or forced. */
export function runsOnWasm(key: string): boolean {
  if (forcedLabel !== undefined) return forcedLabel === WASM;
  if (onWasm.has(key)) return true;
  if (entries.has(key)) return false;
  const planned: PlannedChoice | undefined = plannedChoice(planKey(key, intraOpThreads));
  if (planned !== undefined) return planned.graph === WASM;
  return !deterministicChoices() && recall(key) === WASM;
}

/** Timed rounds when choosing: each contender's fastest run counts (other processes' noise only adds time). */
export const TIMED_ROUNDS = 3;

interface Contender {
  /** The loaded graph, or undefined for the wasm kernel. */
  loaded?: Loaded;
  /** One run, returning the milliseconds the computation itself took (not the setting up of its inputs). */
  run: () => number;
  best: number;
}

/**
 * Loads the candidates and times them with `wasm`, if given, in rounds: each round runs every
 * contender once, starting one further along each time, so that a drift in the machine's speed
 * (or a cache left warm by the one before) weighs on all alike. An untimed round sets them up
 * first. Returns the fastest graph, its values in the output, or WASM. A graph this onnxruntime
 * cannot load or run (one of its internal ops changed) is left out, unless all are.
 */
function race(candidates: readonly Candidate[], views: () => Feeds, wasm: (() => number) | undefined): Loaded | typeof WASM {
  let failure: unknown = new Error('native kernel: no graph to run');
  let contenders: Contender[] = [];
  for (const candidate of candidates) {
    try {
      const loaded = load(candidate);
      const timedRun = (): number => {
        const feeds = views();
        const t0 = performance.now();
        run(loaded, feeds);
        return performance.now() - t0;
      };
      contenders.push({ loaded, run: timedRun, best: Infinity });
    } catch (e) {
      failure = e;
    }
  }
  if (contenders.length === 0) throw failure;
  if (wasm !== undefined) contenders.push({ run: wasm, best: Infinity });
  let last: Contender | undefined;
  for (let round = 0; round <= TIMED_ROUNDS; round++) {
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
    for (const contender of order) {
      let ms: number;
      try {
        ms = contender.run();
      } catch (e) {
        // It may have written part of the output before it failed.
        failure = e;
        if (contender.loaded !== undefined) dispose(contender.loaded);
        contenders = contenders.filter((c) => c !== contender);
        last = undefined;
        continue;
      }
      if (round > 0) contender.best = Math.min(contender.best, ms);
      if (contender.loaded !== undefined) last = contender;
    }
  }
  if (!contenders.some((c) => c.loaded !== undefined)) throw failure;
  const winner = contenders.reduce((a, b) => (b.best < a.best ? b : a));
  for (const c of contenders) if (c !== winner && c.loaded !== undefined) dispose(c.loaded);
  if (winner.loaded === undefined) return WASM;
  // The output holds the kept graph's values, as every later call will (graphs round differently).
  if (last !== winner) winner.run();
  return winner.loaded;
}

/** MEDVAE_NATIVE_GRAPH (tests, benchmarks) forces graphs as forceCandidate does. */
let forcedLabel: string | undefined = process.env['MEDVAE_NATIVE_GRAPH'] || undefined;

/** The first candidate whose label is in the comma-separated `labels`, in their order. */
function pick(candidates: readonly Candidate[], labels: string | undefined): Candidate | undefined {
  for (const label of labels?.split(',') ?? []) {
    const found = candidates.find((c) => c.label === label);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Tests and benchmarks: run the first graph of these comma-separated labels that a kernel offers,
 * else time the graphs but never choose the wasm kernel ('native' does only that); 'wasm' runs
 * the wasm kernel wherever native would have timed it; undefined: normal operation. Forced
 * choices are not remembered.
 */
export function forceCandidate(label: string | undefined): void {
  forcedLabel = label;
  clearSessions();
}

/** Which graph each shape met so far runs, or 'wasm' (benchmarks, tests). */
export function chosenGraphs(): Map<string, string> {
  const graphs = new Map([...entries].flatMap(([key, entry]) => (entry.chosen ? [[key, entry.chosen.label] as const] : [])));
  for (const key of onWasm) graphs.set(key, 'wasm');
  return graphs;
}

/** Disposes every session and forgets every choice (a change of threads, tests). */
export function clearSessions(): void {
  for (const entry of entries.values()) if (entry.chosen !== undefined) dispose(entry.chosen);
  entries.clear();
  onWasm.clear();
}
