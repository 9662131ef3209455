// Which GPU route a launcher's `--gpus` workers will compute on, decided before any worker starts:
// tfjs-node-gpu's CUDA devices, or WebGPU adapters, or none (the workers then run on the CPU, with
// one warning). The launcher loads no TF.js backend for this; the workers choose their own.
import type { BackendChoice } from '../config/schema.ts';
import { nativePackageState } from './tfjs-node-install.ts';
import { probeWebgpu } from './webgpu/discover.ts';

export type GpuRoute =
  | { route: 'cuda' }
  /** `software`: only a software adapter, allowed by --allow-software-gpu; every worker shares it. */
  | { route: 'webgpu'; gpus: string[]; software: boolean }
  | { route: 'none'; why: string };

const CPU_BACKENDS: readonly BackendChoice[] = ['native', 'wasm', 'cpu'];

export async function gpuRoute(choice: BackendChoice, allowSoftwareGpu: boolean): Promise<GpuRoute> {
  if (CPU_BACKENDS.includes(choice)) return { route: 'none', why: `train.backend is ${choice}, a CPU backend` };
  const cuda = nativePackageState('@tensorflow/tfjs-node-gpu') === 'installed';
  if (choice === 'tensorflow' || (choice === 'auto' && cuda)) {
    return cuda ? { route: 'cuda' } : { route: 'none', why: '@tensorflow/tfjs-node-gpu is not installed with its native binding' };
  }
  const probe = await probeWebgpu(choice === 'webgpu' && allowSoftwareGpu);
  if (!probe.ok) return { route: 'none', why: `no CUDA backend (tfjs-node-gpu not installed), and ${probe.why}` };
  const hardware = probe.adapters.filter((a) => !a.software);
  if (hardware.length > 0) return { route: 'webgpu', gpus: hardware.map((a) => a.name), software: false };
  if (choice === 'webgpu' && allowSoftwareGpu) return { route: 'webgpu', gpus: probe.adapters.map((a) => a.name), software: true };
  return { route: 'none', why: `WebGPU offers only a software adapter (${probe.adapters[0]!.name})` };
}
