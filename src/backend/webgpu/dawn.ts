// Dawn's Node binding (the `webgpu` package, an optionalDependency): loaded with a guarded dynamic
// import, so a missing or broken install is a reason to fall back, never a crash. Only the few
// WebGPU interfaces this project touches are typed here, so that type-checking does not depend on
// an optional package being installed.

/** The parts of GPUAdapterInfo this project reads. */
export interface GpuAdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter?: boolean;
}

/** GPUSupportedLimits, by name (numbers only). */
export type GpuLimits = Readonly<Record<string, number>>;

export interface GpuDevice {
  readonly limits: GpuLimits;
  readonly lost: Promise<{ reason: string; message: string }>;
  destroy(): void;
}

export interface GpuAdapter {
  readonly info: GpuAdapterInfo;
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<string>;
  requestDevice(descriptor: { requiredFeatures?: string[]; requiredLimits?: Record<string, number> }): Promise<GpuDevice>;
}

export interface Gpu {
  getPreferredCanvasFormat(): string;
  requestAdapter(options?: {
    powerPreference?: 'low-power' | 'high-performance';
    forceFallbackAdapter?: boolean;
  }): Promise<GpuAdapter | null>;
}

export interface Dawn {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}

/** The package that brings WebGPU to Node. */
export const DAWN_PACKAGE = 'webgpu';

/** The webgpu package could not be loaded. */
export class DawnUnavailableError extends Error {
  override name = 'DawnUnavailableError';
  constructor(
    message: string,
    readonly missing: boolean,
  ) {
    super(message);
  }
}

function errorCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return undefined;
}

let loaded: Promise<Dawn> | undefined;

/** Loads Dawn once and puts its WebGPU globals (GPUBufferUsage, GPUMapMode, ...) on globalThis, as a browser has them. */
export function loadDawn(): Promise<Dawn> {
  loaded ??= (async () => {
    let mod: Dawn;
    try {
      const specifier: string = DAWN_PACKAGE;
      mod = (await import(specifier)) as Dawn;
    } catch (e) {
      const code = errorCode(e);
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
      const detail = (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
      throw new DawnUnavailableError(missing ? `${DAWN_PACKAGE} not installed` : `${DAWN_PACKAGE} failed to load: ${detail}`, missing);
    }
    if (typeof mod.create !== 'function' || typeof mod.globals !== 'object')
      throw new DawnUnavailableError(`${DAWN_PACKAGE} has no create() and globals: an unsupported version`, false);
    for (const [name, value] of Object.entries(mod.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    return mod;
  })();
  loaded.catch(() => {
    loaded = undefined;
  });
  return loaded;
}

/**
 * One adapter as Dawn enumerates it: its backend ('vulkan', 'metal', 'd3d12', ...) and device
 * name. Dawn's binding offers no enumeration call; it lists every adapter in the error of a
 * request for a name no device has, in its own stable order (the order its `adapter=` flag
 * searches), which is what this reads.
 */
export interface EnumeratedAdapter {
  backend: string;
  name: string;
}

/** A name no device has (control characters), so that Dawn answers with its list. */
const NO_SUCH_NAME = '\u0001medvae-enumerate\u0001';

export function parseAdapterList(message: string): EnumeratedAdapter[] {
  const out: EnumeratedAdapter[] = [];
  for (const m of message.matchAll(/^ \* backend: '([^']*)', name: '(.*)'$/gm)) out.push({ backend: m[1]!, name: m[2]! });
  return out;
}

/** Every adapter Dawn sees, in its order; [] when it sees none; undefined when its answer is not worded as expected. */
export async function enumerateAdapters(dawn: Dawn): Promise<EnumeratedAdapter[] | undefined> {
  try {
    // The preference the device is later requested with, so that the order (discrete GPUs first) is the same.
    const adapter = await dawn.create([`adapter=${NO_SUCH_NAME}`]).requestAdapter({ powerPreference: 'high-performance' });
    // No adapter at all: Dawn resolves with null before it looks at names.
    if (adapter === null) return [];
  } catch (e) {
    const listed = parseAdapterList(e instanceof Error ? e.message : String(e));
    return listed.length > 0 ? listed : undefined;
  }
  return undefined;
}

/** Dawn's adapter for `name` (a device name from enumerateAdapters), or the default one when absent. */
export async function requestAdapter(dawn: Dawn, name?: string): Promise<GpuAdapter | null> {
  const flags = name === undefined ? [] : [`adapter=${name}`];
  return dawn.create(flags).requestAdapter({ powerPreference: 'high-performance' });
}
