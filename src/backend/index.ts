// Backend selection: which TF.js backend this process computes on, chosen once at start-up.
//
// `auto` prefers, in order: @tensorflow/tfjs-node-gpu (CUDA), webgpu (Dawn: Vulkan, Metal or D3D12,
// on a hardware adapter only), @tensorflow/tfjs-node (native CPU), native (wasm with its
// convolutions and matrix products on onnxruntime-node, on every core), then wasm (XNNPACK, with
// this project's training kernels). The native and GPU packages are optionalDependencies, so they
// are only ever loaded with a guarded dynamic import() or require(): a missing or broken install
// is a reason to fall back, never a crash. wasm is a dependency: if it
// or its kernels fail, `auto` throws rather than end on the pure-JS cpu backend, which only an
// explicit `cpu` selects.
//
// `native` is not a TF.js backend of its own: TF.js computes on 'wasm' (tf.getBackend() says
// 'wasm', tensors live on the wasm heap, this project's wasm kernels and memory guard apply), with
// the heavy kernels replaced (./native/kernels.ts). BackendInfo.name says 'native'.
import { createRequire } from 'node:module';
import { tf } from '../util/tf.ts';
import type { BackendChoice } from '../config/schema.ts';
import { installWasmMemoryGuard } from './memory.ts';
import { unavailableReason } from './tfjs-node-install.ts';
import {
  clearSessions,
  installNativeKernels,
  loadBinding,
  NativeBindingError,
  ORT_INSTALL_HINT,
  removeNativeKernels,
  setNativeThreads,
} from './native/kernels.ts';
import { GRAPH_SET } from './native/choices.ts';
import { openRunPlan } from './native/run-plan.ts';
import { resolveThreads } from './native/threads.ts';
import { loadSimdKernels } from './simd/module.ts';
import { registerWasmTrainingKernels } from './wasm-kernels/register-all.ts';
import { activateWebgpu } from './webgpu/activate.ts';
import type { AdapterDescription } from './webgpu/adapters.ts';

export {
  WASM_HEAP_LIMIT_BYTES,
  WasmOutOfMemoryError,
  WasmTrapError,
  backendMemoryBytes,
  translateBackendError,
  wasmModuleAborted,
  withBackendErrors,
} from './memory.ts';

// The wasm backend registers itself when loaded: required, not imported, for the start-up cost
// ../util/tf.ts explains.
createRequire(import.meta.url)('@tensorflow/tfjs-backend-wasm');

export type { AdapterDescription } from './webgpu/adapters.ts';
export { GPU_INDEX_ENV } from './webgpu/discover.ts';

export type BackendName = 'tensorflow' | 'webgpu' | 'native' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** True when tensors live on a GPU (tfjs-node-gpu's CUDA device, or a WebGPU adapter, software ones included). */
  gpu: boolean;
  /** webgpu: the adapter computed on. */
  adapter?: AdapterDescription;
  /** Why this backend: which better ones were skipped and why, or that it was asked for. */
  reason: string;
  /** native: the threads each onnxruntime kernel computes with. */
  threads?: number;
}

export interface BackendOptions {
  /** native: compute threads (train.threads); 0 or absent = every core (shared among medvae-dist's local workers). */
  threads?: number;
  /** webgpu: accept a software adapter such as SwiftShader (train.allow_software_gpu); `auto` never does. */
  allowSoftwareGpu?: boolean;
  /** webgpu: which GPU of the stable enumeration (medvae-dist sets it per worker); absent: MEDVAE_GPU_INDEX, else 0. */
  gpuIndex?: number;
}

/** An explicitly requested backend could not be loaded. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly requested: BackendChoice,
    detail: string,
  ) {
    super(`backend '${requested}' is not available: ${detail}`);
    this.name = 'BackendUnavailableError';
  }
}

interface Attempt {
  ok: boolean;
  /** On failure, a short reason such as "tfjs-node not installed". */
  why: string;
}

const nativePackages = [
  { pkg: '@tensorflow/tfjs-node-gpu', short: 'tfjs-node-gpu', gpu: true },
  { pkg: '@tensorflow/tfjs-node', short: 'tfjs-node', gpu: false },
] as const;

function errorCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return undefined;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0].slice(0, 200);
}

async function tryNative(pkg: (typeof nativePackages)[number]['pkg'], short: string): Promise<Attempt> {
  const unavailable = unavailableReason(pkg, short);
  if (unavailable) return { ok: false, why: unavailable };
  try {
    // A variable specifier keeps bundlers and tsc from resolving a package that may be absent.
    const specifier: string = pkg;
    await import(specifier);
  } catch (e) {
    const code = errorCode(e);
    const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    return { ok: false, why: missing ? `${short} not installed` : `${short} failed to load: ${firstLine(e)}` };
  }
  return activate('tensorflow', short);
}

async function activate(name: BackendName, label: string): Promise<Attempt> {
  try {
    // webgpu is registered by activateWebgpu on its chosen adapter; here it is only made active again.
    const ok = await tf.setBackend(tfjsBackendName(name));
    if (!ok) return { ok: false, why: `${label} failed to initialise` };
    await tf.ready();
  } catch (e) {
    return { ok: false, why: `${label} failed to initialise: ${firstLine(e)}` };
  }
  if (name === 'wasm' || name === 'native') {
    installWasmMemoryGuard();
    try {
      await loadSimdKernels();
    } catch (e) {
      return { ok: false, why: `${label}: its SIMD kernels failed to load: ${firstLine(e)}` };
    }
    removeNativeKernels();
    registerWasmTrainingKernels();
    if (name === 'native') installNativeKernels();
  }
  return { ok: true, why: '' };
}

/** Loads onnxruntime-node and activates native; on failure a short reason (no throw). */
async function tryNativeOrt(threads: number): Promise<Attempt & { missing?: boolean }> {
  try {
    loadBinding();
  } catch (e) {
    if (e instanceof NativeBindingError)
      return { ok: false, why: e.missing ? 'onnxruntime-node not installed' : e.message, missing: e.missing };
    return { ok: false, why: `onnxruntime-node failed to load: ${firstLine(e)}` };
  }
  setNativeThreads(threads);
  return activate('native', 'native');
}

/** tfjs-node(-gpu) as the 'tensorflow' backend, or undefined with the reason pushed to `skipped`. */
async function tryTensorflow(
  native: (typeof nativePackages)[number],
  choice: BackendChoice,
  skipped: string[],
): Promise<BackendInfo | undefined> {
  const attempt = await tryNative(native.pkg, native.short);
  if (!attempt.ok) {
    skipped.push(attempt.why);
    return undefined;
  }
  // tfjs-node-gpu runs on the CPU when CUDA finds no device; its backend says which.
  const onDevice = native.gpu && (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  const notes = [native.short, ...skipped];
  if (native.gpu && !onDevice) notes.push('tfjs-node-gpu found no CUDA device, running on CPU');
  if (choice === 'tensorflow') notes.push('requested');
  return { name: 'tensorflow', gpu: onDevice, reason: notes.join('; ') };
}

/** WebGPU on the chosen adapter, or undefined with the reason pushed to `skipped` (an explicit choice throws). */
async function tryWebgpu(choice: BackendChoice, options: BackendOptions, skipped: string[]): Promise<BackendInfo | undefined> {
  const attempt = await activateWebgpu({
    allowSoftware: options.allowSoftwareGpu === true,
    gpuIndex: options.gpuIndex,
    auto: choice === 'auto',
  });
  if (attempt.ok) {
    const notes = [attempt.note, ...skipped];
    if (choice === 'webgpu') notes.push('requested');
    return { name: 'webgpu', gpu: true, adapter: attempt.adapter, reason: notes.join('; ') };
  }
  if (choice === 'webgpu') {
    const install =
      attempt.missing === true ? '; install the optional packages with `npm install webgpu @tensorflow/tfjs-backend-webgpu`' : '';
    throw new BackendUnavailableError(choice, `${attempt.why}${install}; \`medvae gpus\` says what each GPU route sees`);
  }
  // Under auto, on most machines without a GPU: the gist only (`medvae gpus` gives the whole reason).
  skipped.push(`webgpu: ${attempt.why.replace(/^webgpu: /, '').split(/ \(|: /)[0]}`);
  return undefined;
}

async function select(choice: BackendChoice, options: BackendOptions): Promise<BackendInfo> {
  const skipped: string[] = [];
  const [tfjsNodeGpu, tfjsNode] = nativePackages;
  const tensorflow = choice === 'auto' || choice === 'tensorflow';
  const chosen =
    (tensorflow ? await tryTensorflow(tfjsNodeGpu, choice, skipped) : undefined) ??
    (choice === 'auto' || choice === 'webgpu' ? await tryWebgpu(choice, options, skipped) : undefined) ??
    (tensorflow ? await tryTensorflow(tfjsNode, choice, skipped) : undefined);
  if (chosen !== undefined) return chosen;
  if (choice === 'tensorflow') {
    throw new BackendUnavailableError(
      choice,
      `${skipped.join('; ')}. Install @tensorflow/tfjs-node (or -gpu with CUDA), or set backend to auto, webgpu, native, wasm or cpu`,
    );
  }
  if (choice === 'auto' || choice === 'native') {
    const threads = resolveThreads(options.threads);
    const attempt = await tryNativeOrt(threads);
    if (attempt.ok) {
      const notes = [`onnxruntime-node, ${threads} thread${threads === 1 ? '' : 's'}`, ...skipped];
      if (choice === 'native') notes.push('requested');
      return { name: 'native', gpu: false, reason: notes.join('; '), threads };
    }
    if (choice === 'native') {
      throw new BackendUnavailableError(
        choice,
        attempt.missing === true ? `onnxruntime-node is not installed; ${ORT_INSTALL_HINT}, or set backend to auto or wasm` : attempt.why,
      );
    }
    skipped.push(attempt.why);
  }
  for (const name of ['wasm', 'cpu'] as const) {
    if (choice !== 'auto' && choice !== name) continue;
    const attempt = await activate(name, name);
    if (attempt.ok) {
      return { name, gpu: false, reason: choice === 'auto' ? skipped.join('; ') : 'requested' };
    }
    if (choice === name) throw new BackendUnavailableError(choice, attempt.why);
    // wasm and its kernels ship with medvae, unlike the optional native packages: their failure is
    // a broken install to report, never a silent fall to cpu, which is far slower.
    if (name === 'wasm')
      throw new BackendUnavailableError(choice, `${[...skipped, attempt.why].join('; ')}. Reinstall medvae, or choose --backend cpu`);
    skipped.push(attempt.why);
  }
  throw new BackendUnavailableError(choice, skipped.join('; '));
}

/** The TF.js backend a BackendName computes on. */
function tfjsBackendName(name: BackendName): string {
  return name === 'native' ? 'wasm' : name;
}

const selections = new Map<BackendChoice, Promise<BackendInfo>>();

/** What initBackend made active last ('native' and 'wasm' share TF.js's wasm backend). */
let activeName: BackendName | undefined;

/**
 * Makes `choice` the active TF.js backend and returns what was chosen, logging one line
 * ("backend: wasm (tfjs-node-gpu not installed; tfjs-node not installed)"). Idempotent: a repeated
 * call with the same choice returns the first answer without logging again (and re-activates it if
 * another backend was set in between). Throws BackendUnavailableError when an explicit choice
 * cannot load.
 */
export async function initBackend(choice: BackendChoice, log?: (line: string) => void, options: BackendOptions = {}): Promise<BackendInfo> {
  const earlier = selections.get(choice);
  if (earlier !== undefined) {
    const info = await earlier;
    if (activeName !== info.name || tf.getBackend() !== tfjsBackendName(info.name)) {
      if (info.threads !== undefined) setNativeThreads(info.threads);
      const again = await activate(info.name, info.name);
      if (!again.ok) throw new BackendUnavailableError(choice, again.why);
      activeName = info.name;
    }
    return info;
  }
  const pending = select(choice, options).then((info) => {
    activeName = info.name;
    return info;
  });
  selections.set(choice, pending);
  pending.catch(() => selections.delete(choice));
  const info = await pending;
  log?.(`backend: ${info.name}${info.gpu ? ' (gpu)' : ''} (${info.reason})`);
  return info;
}

export interface NativePlanOptions {
  /** train.deterministic: no timing races. */
  deterministic: boolean;
  /** Whether this process writes the plan: the chief. */
  write: boolean;
  /** Where one line about an unusable plan goes. */
  log: (line: string) => void;
}

/**
 * native: the kernels of this process follow the graph plan of the run in `runDir` (its
 * native-plan.json: which graph each kernel shape runs, see native/run-plan.ts), adding to it, and
 * in deterministic runs choose without timing anything. Call once per training process, after
 * initBackend and before the first step; on other backends it does nothing.
 */
export function useNativePlan(runDir: string, options: NativePlanOptions): void {
  if (activeName !== 'native') return;
  openRunPlan(runDir, { ...options, onnxruntime: loadBinding().version, graphs: GRAPH_SET });
  // Shapes chosen before (outside the run) are chosen again, by the plan.
  clearSessions();
}
