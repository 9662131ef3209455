// Which WebGPU adapters this process can have, without TF.js: medvae-dist's launcher and
// `medvae gpus` ask it before any worker loads TF.js (./activate.ts then computes on one).
import { DawnUnavailableError, loadDawn, type Dawn } from './dawn.ts';
import { listAdapters, type AdapterDescription } from './adapters.ts';
import { addSwiftShader, vulkanProblem } from './vulkan.ts';

/** The package with TF.js's WebGPU kernels (an optionalDependency). */
export const TFJS_WEBGPU_PACKAGE = '@tensorflow/tfjs-backend-webgpu';

/** The launcher's per-worker device: the index into the stable list of GPUs (as CUDA_VISIBLE_DEVICES for CUDA). */
export const GPU_INDEX_ENV = 'MEDVAE_GPU_INDEX';

export function gpuIndexFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[GPU_INDEX_ENV];
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${GPU_INDEX_ENV} must be a GPU index (0, 1, ...), got '${raw}'`);
  return n;
}

export type WebgpuProbe =
  { ok: true; dawn: Dawn; adapters: AdapterDescription[]; driverNote: string } | { ok: false; why: string; missing?: boolean };

/**
 * Every adapter Dawn can offer this process, described. Where Vulkan has no driver Dawn would only
 * print its own warnings, so this says why instead, or, with `allowSoftware`, points the loader at
 * Chromium's SwiftShader first.
 */
export async function probeWebgpu(allowSoftware: boolean): Promise<WebgpuProbe> {
  const problem = vulkanProblem();
  let driverNote = '';
  if (problem !== undefined) {
    const manifest = allowSoftware ? addSwiftShader() : undefined;
    if (manifest === undefined) {
      const hint = allowSoftware ? '; for a software GPU install chromium (it ships SwiftShader)' : '';
      return { ok: false, why: `webgpu: ${problem}${hint}` };
    }
    driverNote = `, Vulkan driver ${manifest}`;
  }
  try {
    const dawn = await loadDawn();
    const adapters = await listAdapters(dawn);
    if (adapters.length === 0) return { ok: false, why: 'webgpu: Dawn found no adapter' };
    return { ok: true, dawn, adapters, driverNote };
  } catch (e) {
    if (e instanceof DawnUnavailableError) return { ok: false, why: e.message, missing: e.missing };
    throw e;
  }
}
