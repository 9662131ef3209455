// Makes TF.js compute on a WebGPU device through Dawn: the adapter is chosen here (not by
// tfjs-backend-webgpu's own factory, which takes whatever the platform offers first), and the
// device is created with the adapter's own buffer limits so large activations fit.
import { tf } from '../../util/tf.ts';
import type { Dawn } from './dawn.ts';
import { adapterLine, chooseAdapter, listAdapters, type AdapterChoice, type AdapterDescription } from './adapters.ts';
import { driPrimeTag, gpuPciAddresses } from './pci.ts';
import { gpuIndexFromEnv, probeWebgpu, TFJS_WEBGPU_PACKAGE } from './discover.ts';

export interface WebgpuOptions {
  allowSoftware: boolean;
  /** Absent: GPU_INDEX_ENV, else 0. */
  gpuIndex?: number;
  /** `auto` asks: never a software adapter, and no attempt at all where Vulkan has no driver (Dawn would print its own warnings). */
  auto?: boolean;
}

export type WebgpuAttempt = { ok: true; adapter: AdapterDescription; note: string } | { ok: false; why: string; missing?: boolean };

interface TfjsWebgpuModule {
  WebGPUBackend: new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}

/**
 * One of several identical GPUs: Dawn finds only the first by name, so the process is shown the
 * twin of its rank alone, by PCI address, through Mesa's device-select layer (DRI_PRIME with '!'),
 * before the device is created. Without that layer the first twin is still usable by name; the
 * others are an error that says what to do.
 */
async function pinTwin(dawn: Dawn, choice: AdapterChoice, twin: { rank: number; count: number }): Promise<AdapterChoice> {
  const { adapter } = choice;
  const addresses = gpuPciAddresses(adapter.vendor);
  if (addresses.length === twin.count && process.env.DRI_PRIME === undefined) {
    const address = addresses[twin.rank]!;
    process.env.DRI_PRIME = driPrimeTag(address);
    const seen = (await listAdapters(dawn)).filter((a) => a.name === adapter.name);
    if (seen.length === 1) return { adapter: seen[0]!, note: `${choice.note}, PCI ${address} (DRI_PRIME, Mesa's device-select layer)` };
    delete process.env.DRI_PRIME;
  }
  const unpinned = `${twin.count} GPUs are named ${adapter.name} and Dawn selects adapters by name; Mesa's device-select Vulkan layer (mesa-vulkan-drivers) lets medvae pin each by PCI address`;
  if (twin.rank === 0) return { ...choice, note: `${choice.note}, the first of ${unpinned}` };
  throw new Error(
    `${choice.note.replace(/ of \d+$/, '')} cannot be selected: ${unpinned}, or give each worker its own container (docs/gpu.md, "Several identical GPUs")`,
  );
}

let registered: AdapterDescription | undefined;

/** Chooses an adapter, creates its device and registers TF.js's 'webgpu' backend on it (once per process). */
export async function activateWebgpu(options: WebgpuOptions): Promise<WebgpuAttempt> {
  if (registered !== undefined) return { ok: true, adapter: registered, note: 'already active' };
  // `auto` never takes a software adapter, so it never looks for one.
  const allowSoftware = options.allowSoftware && options.auto !== true;
  const probe = await probeWebgpu(allowSoftware);
  if (!probe.ok) return probe;
  const { dawn, adapters } = probe;
  let backendModule: TfjsWebgpuModule;
  try {
    const specifier: string = TFJS_WEBGPU_PACKAGE;
    backendModule = (await import(specifier)) as TfjsWebgpuModule;
  } catch (e) {
    return { ok: false, why: `${TFJS_WEBGPU_PACKAGE} failed to load: ${firstLine(e)}`, missing: true };
  }
  let choice: AdapterChoice;
  try {
    choice = chooseAdapter(adapters, options.gpuIndex ?? gpuIndexFromEnv(), allowSoftware);
    if (choice.twin !== undefined) choice = await pinTwin(dawn, choice, choice.twin);
  } catch (e) {
    return { ok: false, why: `webgpu: ${firstLine(e)}` };
  }
  try {
    const gpu = dawn.create([`adapter=${choice.adapter.name}`]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (adapter === null) return { ok: false, why: `webgpu: ${choice.adapter.name} is no longer offered` };
    const limits = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxBufferSize: limits.maxBufferSize!,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize!,
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize!,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension!,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX!,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup!,
      },
    });
    void device.lost.then((lost) => {
      if (lost.reason !== 'destroyed') process.stderr.write(`error: the GPU device was lost (${lost.message || lost.reason})\n`);
    });
    // tfjs-backend-webgpu asks navigator.gpu whether WebGPU exists, as in a browser.
    const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as { gpu?: unknown };
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    if (tf.findBackend('webgpu') !== null) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new backendModule.WebGPUBackend(device, adapter.info));
    if (!(await tf.setBackend('webgpu'))) return { ok: false, why: `webgpu: TF.js could not start on ${choice.adapter.name}` };
    await tf.ready();
  } catch (e) {
    return { ok: false, why: `webgpu: ${choice.adapter.name} failed to start: ${firstLine(e)}` };
  }
  registered = choice.adapter;
  return { ok: true, adapter: choice.adapter, note: `${adapterLine(choice.adapter)}, ${choice.note}${probe.driverNote}` };
}
