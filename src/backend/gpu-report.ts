// What each GPU route sees on this machine, in one object: WebGPU (Dawn's adapters, or why none),
// CUDA through tfjs-node-gpu (its install state and the NVIDIA GPUs), and which of them
// `--backend auto` would compute on, by the same order as initBackend. `medvae gpus` prints it; it
// loads no TF.js backend and creates no device, so it is a diagnosis that cannot itself fail on a
// broken GPU stack.
import { arch, platform } from 'node:os';
import { nvidiaReport, tensorflowGpuReport, type NvidiaReport, type NvidiaSources, type TensorflowGpuReport } from './cuda-devices.ts';
import { webgpuReport, type ProbeOptions, type WebgpuReport } from './webgpu/probe.ts';

/**
 * The variables that change which GPU a process sees or how it is chosen: CUDA's, NVIDIA's
 * container runtime's, the Vulkan loader's, Mesa's device-select layer's, Dawn's and medvae's.
 */
export const GPU_ENV_VARS = [
  'MEDVAE_GPU_INDEX',
  'CUDA_VISIBLE_DEVICES',
  'CUDA_DEVICE_ORDER',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
  'VK_DRIVER_FILES',
  'VK_ICD_FILENAMES',
  'VK_ADD_DRIVER_FILES',
  'VK_LOADER_DRIVERS_SELECT',
  'VK_LOADER_DRIVERS_DISABLE',
  'VK_LOADER_DEVICE_SELECT',
  'VK_LOADER_DEVICE_ID_FILTER',
  'VK_LOADER_VENDOR_ID_FILTER',
  'VK_LOADER_DRIVER_ID_FILTER',
  'MESA_VK_DEVICE_SELECT',
  'MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE',
  'DRI_PRIME',
  'DAWNNODE_BACKEND',
] as const;

export type AutoRoute =
  | { route: 'cuda'; why: string }
  | { route: 'webgpu'; adapter: { index: number; name: string }; why: string }
  | { route: 'none'; why: string };

export interface GpuReport {
  platform: string;
  /** The GPU variables set in this process, as the user gave them (before --allow-software-gpu adds SwiftShader). */
  env: Record<string, string>;
  webgpu: WebgpuReport;
  tensorflow: TensorflowGpuReport;
  nvidia: NvidiaReport;
  /** The GPU `--backend auto` would compute on, and why. */
  auto: AutoRoute;
}

/** initBackend's order for `auto`: tfjs-node-gpu when installed, then a hardware WebGPU adapter, else the CPU backends. */
export function autoRoute(tensorflow: TensorflowGpuReport, nvidia: NvidiaReport, webgpu: WebgpuReport): AutoRoute {
  if (tensorflow.state === 'installed') {
    const visible = tensorflow.cudaVisibleDevices !== null ? ` (CUDA_VISIBLE_DEVICES=${tensorflow.cudaVisibleDevices})` : '';
    const gpus = nvidia.gpus.length > 0 ? `${nvidia.gpus.length} NVIDIA GPU(s) listed by ${nvidia.source}` : 'no NVIDIA GPU listed';
    return {
      route: 'cuda',
      why: `tfjs-node-gpu is installed, and auto tries it first: on a CUDA device when CUDA finds one${visible}, else on the CPU; ${gpus}`,
    };
  }
  const skipped = tensorflow.why ?? 'tfjs-node-gpu unavailable';
  const pick = webgpu.auto;
  if (pick !== null && !('error' in pick))
    return { route: 'webgpu', adapter: { index: pick.index, name: pick.name }, why: `${skipped}; WebGPU ${pick.note}` };
  const software = webgpu.adapters.length > 0 && webgpu.adapters.every((a) => a.software);
  const webgpuWhy = software
    ? `only a software adapter (${webgpu.adapters[0]!.name}), which auto never takes`
    : (webgpu.why ?? (pick !== null && 'error' in pick ? pick.error : 'no adapter'));
  return { route: 'none', why: `${skipped}; webgpu: ${webgpuWhy}; auto continues with the CPU backends (tfjs-node, native, wasm)` };
}

export interface GpuReportOptions extends ProbeOptions {
  nvidia?: NvidiaSources;
  /** Where tfjs-node-gpu is resolved from (tests). */
  resolveFrom?: string;
}

export async function gpuReport(options: GpuReportOptions): Promise<GpuReport> {
  const env = options.env ?? process.env;
  // Read first: with allowSoftware the WebGPU probe adds SwiftShader to the loader's variables.
  const given: Record<string, string> = {};
  for (const name of GPU_ENV_VARS) if (env[name] !== undefined) given[name] = env[name];
  const tensorflow = tensorflowGpuReport(env, options.resolveFrom);
  const nvidia = nvidiaReport(options.nvidia);
  const webgpu = await webgpuReport({ ...options, env });
  return { platform: `${platform()} ${arch()}`, env: given, webgpu, tensorflow, nvidia, auto: autoRoute(tensorflow, nvidia, webgpu) };
}
