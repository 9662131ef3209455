// Which WebGPU adapter a process computes on: every adapter Dawn sees, described once, software
// ones (SwiftShader, lavapipe, llvmpipe, WARP) told apart from GPUs, and the i-th of a stable
// enumeration picked for worker i of `medvae-dist --gpus`.
import { enumerateAdapters, requestAdapter, type EnumeratedAdapter, type GpuAdapter, type GpuLimits, type Dawn } from './dawn.ts';

export interface AdapterDescription {
  /** The index in Dawn's enumeration of every adapter. */
  index: number;
  backend: string;
  name: string;
  vendor: string;
  architecture: string;
  device: string;
  driver: string;
  /** A CPU implementation (WebGPU's fallback adapter, or a known software Vulkan driver). */
  software: boolean;
  /** The limits this project reads (bytes). */
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|warp/i;

export function isSoftware(
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean },
  name: string,
): boolean {
  return (
    info.isFallbackAdapter === true ||
    [info.vendor, info.architecture, info.device, info.description, name].some((s) => SOFTWARE_NAMES.test(s))
  );
}

export function describe(entry: EnumeratedAdapter, index: number, adapter: GpuAdapter): AdapterDescription {
  const { info } = adapter;
  const limits: GpuLimits = adapter.limits;
  return {
    index,
    backend: entry.backend,
    name: entry.name,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    driver: info.description,
    software: isSoftware(info, entry.name),
    limits: { maxBufferSize: limits.maxBufferSize ?? 0, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize ?? 0 },
  };
}

/** One line for logs: "NVIDIA H100 (nvidia hopper, vulkan, driver 550.54)". */
export function adapterLine(a: AdapterDescription): string {
  const what = [a.vendor, a.architecture].filter((s) => s !== '').join(' ');
  return `${a.name} (${[what, a.backend, a.driver && (/driver/i.test(a.driver) ? a.driver : `driver ${a.driver}`)].filter((s) => s !== '').join(', ')}${a.software ? ', software' : ''})`;
}

/** Every adapter Dawn sees, described; each needs its own request, since Dawn hands out one per request. */
export async function listAdapters(dawn: Dawn): Promise<AdapterDescription[]> {
  const entries = await enumerateAdapters(dawn);
  if (entries === undefined) {
    // A binding that words its list differently: the default adapter is still one.
    const adapter = await requestAdapter(dawn).catch(() => null);
    return adapter === null ? [] : [describe({ backend: '', name: adapter.info.device || adapter.info.description }, 0, adapter)];
  }
  const out: AdapterDescription[] = [];
  for (const [index, entry] of entries.entries()) {
    const adapter = await requestAdapter(dawn, entry.name).catch(() => null);
    if (adapter !== null) out.push(describe(entry, index, adapter));
  }
  return out;
}

export interface AdapterChoice {
  adapter: AdapterDescription;
  /** What the start-up line says about the choice. */
  note: string;
  /**
   * When other GPUs share the adapter's name: its rank among them (0 for the first) and how many
   * there are. Dawn's `adapter=` flag always finds the first, so these need telling apart by PCI address.
   */
  twin?: { rank: number; count: number };
}

/**
 * The adapter for `gpuIndex` (medvae-dist's worker device; 0 alone): the gpuIndex-th hardware
 * adapter, or with `allowSoftware` and no hardware adapter, the software one (every index shares
 * it). Throws with a line a user can act on.
 */
export function chooseAdapter(adapters: AdapterDescription[], gpuIndex: number, allowSoftware: boolean): AdapterChoice {
  const hardware = adapters.filter((a) => !a.software);
  const software = adapters.filter((a) => a.software);
  if (hardware.length > 0) {
    const adapter = hardware[gpuIndex];
    if (adapter === undefined)
      throw new Error(
        `GPU ${gpuIndex} does not exist: WebGPU sees ${hardware.length} GPU(s) (${hardware.map((a, i) => `${i}: ${a.name}`).join('; ')}); \`medvae gpus\` lists them`,
      );
    const twins = hardware.filter((a) => a.name === adapter.name);
    const note = `GPU ${gpuIndex} of ${hardware.length}`;
    return twins.length > 1 ? { adapter, note, twin: { rank: twins.indexOf(adapter), count: twins.length } } : { adapter, note };
  }
  if (software.length === 0) throw new Error('WebGPU found no adapter');
  if (!allowSoftware)
    throw new Error(
      `WebGPU found only a software adapter (${software[0]!.name}), far slower than the native CPU backend: use --backend native, or --allow-software-gpu to test on it`,
    );
  const shared = gpuIndex > 0 ? `, shared by GPU ${gpuIndex}` : '';
  return { adapter: software[0]!, note: `software adapter allowed by --allow-software-gpu${shared}` };
}
