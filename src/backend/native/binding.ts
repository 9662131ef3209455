// Loads onnxruntime-node's synchronous native binding: TF.js kernels are synchronous, and the
// package's public InferenceSession.run() returns a Promise only because it wraps the binding's
// own run() in setImmediate. The binding (`onnxruntime-node/dist/binding`) is an internal
// interface: its shape is checked here, once, with a named error, and the package's version is
// pinned by package-lock.json (test/process/install-and-launch.test.ts checks both).
import { createRequire } from 'node:module';

/** The package that brings the native compute path (an optionalDependency). */
export const ORT_PACKAGE = 'onnxruntime-node';

/** What to do when the package is missing, for one-line errors. */
export const ORT_INSTALL_HINT = `install it with 'npm install ${ORT_PACKAGE}' (an optional dependency of medvae; npm ci brings it on linux, macOS and Windows)`;

/** A float32 tensor as the binding reads it: a typed array that it uses in place, no copy. */
export interface OrtTensor {
  readonly type: 'float32';
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export interface OrtSessionOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  executionMode: 'sequential';
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
  enableCpuMemArena: boolean;
  enableMemPattern: boolean;
  logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  extra: Record<string, Record<string, string>>;
}

export interface OrtSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: OrtSessionOptions): void;
  /** Runs the graph at once; a tensor given in `fetches` is written in place. */
  run(
    feeds: Record<string, OrtTensor>,
    fetches: Record<string, OrtTensor | null>,
    options: Record<string, never>,
  ): Record<string, OrtTensor>;
  dispose(): void;
}

export interface OrtBinding {
  /** Makes a tensor over `data` (a view, not a copy). */
  tensor(data: Float32Array, dims: readonly number[]): OrtTensor;
  newSession(): OrtSession;
  /** The package's version, from its package.json. */
  version: string;
}

/** onnxruntime-node could not be loaded, or its binding is not the shape this code was written for. */
export class NativeBindingError extends Error {
  override name = 'NativeBindingError';
  constructor(
    message: string,
    /** True when the package is simply not installed. */
    readonly missing: boolean,
  ) {
    super(message);
  }
}

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => (typeof v === 'object' || typeof v === 'function') && v !== null;

function errorCode(e: unknown): string | undefined {
  return isObject(e) && typeof e['code'] === 'string' ? e['code'] : undefined;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
}

/**
 * Checks the binding module's shape and wraps it. `bindingModule` is what
 * `require('onnxruntime-node/dist/binding')` returned, `tensorClass` onnxruntime-common's Tensor.
 * Throws NativeBindingError naming what is missing.
 */
export function checkBinding(bindingModule: unknown, tensorClass: unknown, version: string): OrtBinding {
  const fail = (what: string): never => {
    throw new NativeBindingError(
      `${ORT_PACKAGE} ${version}: its internal binding has changed (${what}); pin the version in package-lock.json that medvae was tested with`,
      false,
    );
  };
  if (!isObject(bindingModule)) return fail('dist/binding exports nothing');
  const { binding, initOrt } = bindingModule;
  if (typeof initOrt !== 'function') return fail('no initOrt()');
  if (!isObject(binding)) return fail('no binding object');
  const Session = binding['InferenceSession'];
  if (typeof Session !== 'function') return fail('no binding.InferenceSession constructor');
  const proto: unknown = Session.prototype;
  if (!isObject(proto)) return fail('InferenceSession has no prototype');
  for (const method of ['loadModel', 'run', 'dispose']) {
    if (typeof proto[method] !== 'function') fail(`InferenceSession has no ${method}()`);
  }
  if (typeof tensorClass !== 'function') return fail('onnxruntime-common exports no Tensor class');
  try {
    (initOrt as () => void)();
  } catch (e) {
    throw new NativeBindingError(`${ORT_PACKAGE} ${version} failed to initialise: ${firstLine(e)}`, false);
  }
  const SessionCtor = Session as new () => OrtSession;
  const TensorCtor = tensorClass as new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  return {
    tensor: (data, dims) => new TensorCtor('float32', data, dims),
    newSession: () => new SessionCtor(),
    version,
  };
}

let loaded: OrtBinding | NativeBindingError | undefined;

/** The binding, loaded once; throws NativeBindingError (missing: true when not installed). */
export function loadBinding(): OrtBinding {
  if (loaded === undefined) {
    try {
      loaded = loadFresh();
    } catch (e) {
      loaded = e instanceof NativeBindingError ? e : new NativeBindingError(`${ORT_PACKAGE} failed to load: ${firstLine(e)}`, false);
    }
  }
  if (loaded instanceof NativeBindingError) throw loaded;
  return loaded;
}

function loadFresh(): OrtBinding {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve(`${ORT_PACKAGE}/package.json`);
  } catch (e) {
    const code = errorCode(e);
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new NativeBindingError(`${ORT_PACKAGE} is not installed; ${ORT_INSTALL_HINT}`, true);
    }
    throw e;
  }
  const { version } = require(packageJson) as { version: string };
  const fromPackage = createRequire(packageJson);
  let bindingModule: unknown;
  try {
    bindingModule = fromPackage('./dist/binding');
  } catch (e) {
    throw new NativeBindingError(
      `${ORT_PACKAGE} ${version}: its native library failed to load on ${process.platform}-${process.arch}: ${firstLine(e)}`,
      false,
    );
  }
  const common = fromPackage('onnxruntime-common') as Loose;
  return checkBinding(bindingModule, common['Tensor'], version);
}
