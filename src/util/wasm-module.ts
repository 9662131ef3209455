// Loads a WebAssembly module that scripts/build-wasm.ts compiled from its .wat at build time, and
// checks its exports against the TypeScript interface callers use. Why check: a stale or
// hand-edited .wasm would otherwise load and then compute the wrong thing or trap far from the
// cause; here it fails at load, naming the file and the export that differs.
import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from './package-root.ts';

export type WasmValueType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'funcref' | 'externref';

/**
 * What each member of the interface T must be in the module: a function's wasm parameter types,
 * one per TypeScript parameter (the compiler checks the count), or 'memory'. Exported functions
 * return nothing.
 */
export type WasmExportSpec<T> = {
  readonly [K in keyof T]: T[K] extends WebAssembly.Memory
    ? 'memory'
    : T[K] extends (...args: infer P) => void
      ? { readonly [I in keyof P]: WasmValueType }
      : never;
};

/** A module could not be read, compiled or instantiated: one line naming the file and why. */
export class WasmLoadError extends Error {
  override name = 'WasmLoadError';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

/** The module lacks an export its interface names, or exports it with another kind or signature. */
export class WasmExportError extends WasmLoadError {
  override name = 'WasmExportError';
}

/** A module whose exports matched its interface T; instantiate() may be called any number of times. */
export interface CheckedWasmModule<T> {
  readonly file: string;
  instantiate(imports?: WebAssembly.Imports): T;
}

interface Signature {
  params: string[];
  results: string[];
}

type Export = { kind: 'function'; signature: Signature } | { kind: 'table' | 'memory' | 'global' | 'tag' };

const VALUE_TYPES: Record<number, WasmValueType> = {
  0x7f: 'i32',
  0x7e: 'i64',
  0x7d: 'f32',
  0x7c: 'f64',
  0x7b: 'v128',
  0x70: 'funcref',
  0x6f: 'externref',
};
const EXTERNAL_KINDS = ['function', 'table', 'memory', 'global', 'tag'] as const;

/**
 * The exports of a valid module binary with their function signatures, read from its type, import,
 * function and export sections (the JS API says an export's kind but not its signature).
 */
function readExports(bytes: Uint8Array): Map<string, Export> {
  let at = 8; // past the magic number and version
  const byte = (): number => bytes[at++];
  const uleb = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  };
  const vector = <V>(item: () => V): V[] => Array.from({ length: uleb() }, item);
  const valueType = (): string => {
    const code = byte();
    return VALUE_TYPES[code] ?? `0x${code.toString(16)}`;
  };
  const functionType = (): Signature => {
    byte(); // 0x60, the form of a function type
    return { params: vector(valueType), results: vector(valueType) };
  };
  const name = (): string => {
    const length = uleb();
    at += length;
    return new TextDecoder().decode(bytes.subarray(at - length, at));
  };
  const limits = (): void => {
    const flags = byte();
    uleb();
    if (flags & 1) uleb();
  };
  /** Reads an import's description: its type index when it imports a function, else undefined. */
  const importDescription = (): number | undefined => {
    switch (byte()) {
      case 0: // function: type index
        return uleb();
      case 1: // table: element type, limits
        byte();
        limits();
        return undefined;
      case 2: // memory: limits
        limits();
        return undefined;
      case 3: // global: value type, mutability
        at += 2;
        return undefined;
      default: // tag: attribute, type index
        byte();
        uleb();
        return undefined;
    }
  };
  const types: Signature[] = [];
  const functionTypes: number[] = [];
  const found = new Map<string, { kind: number; index: number }>();
  while (at < bytes.length) {
    const id = byte();
    const end = uleb() + at;
    if (id === 1) {
      types.push(...vector(functionType));
    } else if (id === 2) {
      for (const { imported } of vector(() => ({ module: name(), field: name(), imported: importDescription() }))) {
        if (imported !== undefined) functionTypes.push(imported);
      }
    } else if (id === 3) {
      functionTypes.push(...vector(uleb));
    } else if (id === 7) {
      for (const entry of vector(() => ({ name: name(), kind: byte(), index: uleb() }))) {
        found.set(entry.name, { kind: entry.kind, index: entry.index });
      }
    }
    at = end;
  }
  const exports = new Map<string, Export>();
  for (const [exportName, { kind, index }] of found) {
    const external = EXTERNAL_KINDS[kind] ?? 'tag';
    exports.set(exportName, external === 'function' ? { kind: 'function', signature: types[functionTypes[index]] } : { kind: external });
  }
  return exports;
}

const list = (types: readonly string[]): string => `(${types.join(', ')})`;

/** Every difference between the module's exports and `spec`, as short phrases. */
function mismatches(exports: Map<string, Export>, spec: Record<string, 'memory' | readonly WasmValueType[]>): string[] {
  const problems: string[] = [];
  for (const [key, want] of Object.entries(spec)) {
    const got = exports.get(key);
    if (got === undefined) {
      problems.push(`export '${key}' is missing`);
    } else if (want === 'memory') {
      if (got.kind !== 'memory') problems.push(`export '${key}' is a ${got.kind}, expected a memory`);
    } else if (got.kind !== 'function') {
      problems.push(`export '${key}' is a ${got.kind}, expected a function`);
    } else if (list(got.signature.params) !== list(want) || got.signature.results.length > 0) {
      const returns = got.signature.results.length > 0 ? ` -> ${list(got.signature.results)}` : '';
      problems.push(`export '${key}' is ${list(got.signature.params)}${returns}, expected ${list(want)}`);
    }
  }
  return problems;
}

/**
 * Reads and compiles the .wasm at `url` and checks its exports against `spec`, the interface
 * `interfaceName` spelled out. Throws WasmLoadError (file unreadable or not a valid module) or
 * WasmExportError (an export missing or of another kind or signature), each one line.
 */
export function loadWasmModule<T>(url: URL, interfaceName: string, spec: WasmExportSpec<T>): CheckedWasmModule<T> {
  const path = fileURLToPath(url);
  const inPackage = relative(PACKAGE_ROOT, path);
  const file = inPackage.startsWith('..') || isAbsolute(inPackage) ? path : inPackage;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : String(e);
    throw new WasmLoadError(file, `cannot be read (${code}); it is built from its .wat by 'npm run build:wasm'`);
  }
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes);
  } catch (e) {
    throw new WasmLoadError(file, `is not a valid WebAssembly module (${firstLine(e)}); rebuild it with 'npm run build:wasm'`);
  }
  const problems = mismatches(readExports(bytes), spec as Record<string, 'memory' | readonly WasmValueType[]>);
  if (problems.length > 0) {
    throw new WasmExportError(file, `does not match ${interfaceName}: ${problems.join('; ')}`);
  }
  return {
    file,
    instantiate(imports?: WebAssembly.Imports): T {
      try {
        return new WebAssembly.Instance(module, imports).exports as unknown as T;
      } catch (e) {
        throw new WasmLoadError(file, `cannot be instantiated (${firstLine(e)})`);
      }
    },
  };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
