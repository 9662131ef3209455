// How many images one forward/backward pass may hold. `train.micro_batch: auto` (the default)
// derives it from a memory budget and the activation sizes of the networks; the effective (global)
// batch then grows through gradient accumulation and workers, not through memory.
//
// CPU backends (wasm, native, tensorflow, cpu) size it from `activationBytesPerImage`, calibrated on
// wasm; the default job (64x64, batch 64) gets its whole batch, 64, in one pass. On a WebGPU adapter
// the size comes from the model's own layer shapes (src/models/footprint.ts: the VAE-GAN's
// discriminator and double decoder pass included) and must pass two limits: the footprint within
// `train.memory_budget_mb` (WebGPU does not say how much memory a device has: Dawn's Node binding
// offers neither memory heaps nor any other measure of it), and every single activation tensor
// within the adapter's largest storage buffer binding (TF.js binds each tensor whole). More in
// src/train/README.md.
import type { ExperimentConfig } from '../config/schema.ts';
import type { AdapterDescription, BackendInfo } from '../backend/index.ts';
import { trainingFootprint, type ActivationShape } from '../models/footprint.ts';

/**
 * Bytes of training memory one image costs: float32 activations of every encoder and decoder
 * layer, times the copies a training step keeps of each (conv output, BN output, activation,
 * their gradients and the backend's scratch). The factor was calibrated on the wasm backend with
 * this project's earlier kernels; with the default 3000 MB budget `auto` picks 4 at 256x256. It is
 * kept although today's kernels hold less per image (bench:step reports the peak): the budget
 * also covers the loader, evaluation and pictures.
 */
export const COPIES_PER_ACTIVATION = 36;

export function activationBytesPerImage(cfg: ExperimentConfig): number {
  const { image_size: size, hidden_dims: dims, in_channels: channels } = cfg.model;
  let elements = size * size * channels;
  dims.forEach((d, i) => {
    elements += (size / 2 ** (i + 1)) ** 2 * d;
  });
  // Decoder: the same stack in reverse, then one more upsampling to full size and the output conv.
  dims.forEach((d, i) => {
    elements += (size / 2 ** (i + 1)) ** 2 * d;
  });
  elements += size * size * dims[0]! + size * size * channels;
  return elements * 4 * COPIES_PER_ACTIVATION;
}

/**
 * GPU bytes per float32 element of the forward tensors of src/models/footprint.ts: the tensor, its
 * gradient, and room for the kernels' scratch. TF.js's WebGPU backend held 1.8 to 2.5 times the
 * forward tensors per image through a training step (SwiftShader, tfjs-backend-webgpu 4.22: VAE,
 * MS-SSIM VAE and VAE-GAN at 32x32 and 64x64, measured as the growth of numBytesAllocatedInGPU
 * between micro-batches of 2 and 8).
 */
export const GPU_BYTES_PER_ELEMENT = 4 * 3;

/**
 * GPU bytes per trained parameter: weights, the micro-batch's gradients, their sum over
 * micro-batches, Adam's two moments, and one spare.
 */
export const GPU_BYTES_PER_PARAMETER = 4 * 6;

/** A micro-batch that cannot fit the GPU: the message is one line naming the limit, the size and what to do. */
export class MicroBatchError extends Error {
  override name = 'MicroBatchError';
}

/** What a training step of `cfg`'s model holds on a GPU. */
export interface GpuFootprint {
  /** Activation bytes per image of the micro-batch. */
  bytesPerImage: number;
  /** Weights and optimizer state, whatever the micro-batch. */
  fixedBytes: number;
  /** The activation that makes the largest single tensor, and its bytes per image of the micro-batch. */
  largest: ActivationShape;
  largestBytesPerImage: number;
}

export function gpuFootprint(cfg: ExperimentConfig): GpuFootprint {
  const { activations, parameters } = trainingFootprint(cfg.model);
  let elements = 0;
  let largest = activations[0]!;
  const perImage = (a: ActivationShape): number => a.passes * a.height * a.width * a.channels;
  for (const a of activations) {
    elements += perImage(a) * a.tensors;
    if (perImage(a) > perImage(largest)) largest = a;
  }
  return {
    bytesPerImage: elements * GPU_BYTES_PER_ELEMENT,
    fixedBytes: parameters * GPU_BYTES_PER_PARAMETER,
    largest,
    largestBytesPerImage: perImage(largest) * 4,
  };
}

const MB = 2 ** 20;

function mb(bytes: number): string {
  const v = bytes / MB;
  return v >= 10 ? `${Math.round(v)} MB` : `${Number(v.toPrecision(2))} MB`;
}

/** The largest buffer TF.js may bind: it binds every tensor whole, as a storage buffer. */
function bindingLimit(adapter: AdapterDescription): { bytes: number; which: string } {
  const { maxBufferSize, maxStorageBufferBindingSize } = adapter.limits;
  return maxStorageBufferBindingSize <= maxBufferSize
    ? { bytes: maxStorageBufferBindingSize, which: 'maxStorageBufferBindingSize' }
    : { bytes: maxBufferSize, which: 'maxBufferSize' };
}

function largestTensor(cfg: ExperimentConfig, f: GpuFootprint, images: number): string {
  const a = f.largest;
  const shape = `${a.height}x${a.width}x${a.channels}`;
  return `a ${mb(f.largestBytesPerImage * images)} tensor (${a.network} ${a.layer}: ${images * a.passes} x ${shape} float32 at ${cfg.model.image_size}x${cfg.model.image_size})`;
}

/**
 * The micro-batch for the fewest passes over `rankBatch` whose tensors fit the adapter's bindings
 * and whose footprint fits the budget: for k = 1, 2, ... passes, ceil(rankBatch / k) images each
 * (the most even split the trainer's fixed-size micro-batches allow), the first that fits.
 */
function gpuMicroBatch(cfg: ExperimentConfig, rankBatch: number, adapter: AdapterDescription): number {
  const f = gpuFootprint(cfg);
  const limit = bindingLimit(adapter);
  const budget = cfg.train.memory_budget_mb * MB;
  const byBinding = Math.floor(limit.bytes / f.largestBytesPerImage);
  if (byBinding < 1) {
    throw new MicroBatchError(
      `train.micro_batch auto: one image needs ${largestTensor(cfg, f, 1)}, more than ${adapter.name}'s largest storage buffer (${mb(limit.bytes)}, WebGPU limit ${limit.which}): use a smaller model.image_size or model.hidden_dims, or a GPU with larger limits`,
    );
  }
  // TF.js's WebGPU backend keeps the buffers of every tensor size it has made: a last, smaller
  // micro-batch (rankBatch % m images) adds buffers of its own sizes beside those of the full ones.
  const fits = (m: number): boolean => m <= byBinding && f.fixedBytes + f.bytesPerImage * (m + (rankBatch % m)) <= budget;
  for (let passes = 1; passes <= rankBatch; passes++) {
    const m = Math.ceil(rankBatch / passes);
    if (fits(m)) return m;
  }
  throw new MicroBatchError(
    `train.micro_batch auto: one ${cfg.model.image_size}x${cfg.model.image_size} image of ${cfg.model.name} needs about ${mb(f.fixedBytes + f.bytesPerImage)} of GPU memory (${mb(f.bytesPerImage)} of activations, ${mb(f.fixedBytes)} of weights and optimizer state), more than train.memory_budget_mb (${cfg.train.memory_budget_mb} MB): raise train.memory_budget_mb if the GPU has the memory (WebGPU does not tell), or use a smaller model.image_size or model.hidden_dims, or a GPU with more memory`,
  );
}

/**
 * The micro-batch to use for a per-worker batch of `rankBatch` images. On a WebGPU adapter a
 * number whose tensors cannot be bound is refused as well: WebGPU would skip those kernels.
 */
export function resolveMicroBatch(cfg: ExperimentConfig, rankBatch: number, backend: Pick<BackendInfo, 'name' | 'adapter'>): number {
  const requested = cfg.train.micro_batch;
  const { adapter } = backend;
  if (requested !== 'auto') {
    const micro = Math.min(requested, rankBatch);
    if (adapter !== undefined) {
      const f = gpuFootprint(cfg);
      const limit = bindingLimit(adapter);
      const most = Math.floor(limit.bytes / f.largestBytesPerImage);
      if (micro > most) {
        throw new MicroBatchError(
          `train.micro_batch ${micro} needs ${largestTensor(cfg, f, micro)}, more than ${adapter.name}'s largest storage buffer (${mb(limit.bytes)}, WebGPU limit ${limit.which}): ${most >= 1 ? `use train.micro_batch: auto or at most ${most}` : 'use a smaller model.image_size or model.hidden_dims, or a GPU with larger limits'}`,
        );
      }
    }
    return micro;
  }
  if (adapter !== undefined) return gpuMicroBatch(cfg, rankBatch, adapter);
  // wasm cannot address more than 4 GB whatever the budget says.
  const budgetMb =
    backend.name === 'wasm' || backend.name === 'native' ? Math.min(cfg.train.memory_budget_mb, 3500) : cfg.train.memory_budget_mb;
  const fits = Math.floor((budgetMb * 1024 * 1024) / activationBytesPerImage(cfg));
  return Math.max(1, Math.min(rankBatch, fits));
}
