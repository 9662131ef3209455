// How many images one forward/backward pass may hold. `train.micro_batch: auto` derives it from a
// memory budget and the activation sizes of the conv stacks; the effective (global) batch then
// grows through gradient accumulation and workers, not through memory.
import type { ExperimentConfig } from '../config/schema.ts';
import type { BackendInfo } from '../backend/index.ts';

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

/** The micro-batch to use for a per-worker batch of `rankBatch` images. */
export function resolveMicroBatch(cfg: ExperimentConfig, rankBatch: number, backend: Pick<BackendInfo, 'name' | 'adapter'>): number {
  const requested = cfg.train.micro_batch;
  if (requested !== 'auto') return Math.min(requested, rankBatch);
  // wasm cannot address more than 4 GB whatever the budget says.
  const budgetMb =
    backend.name === 'wasm' || backend.name === 'native' ? Math.min(cfg.train.memory_budget_mb, 3500) : cfg.train.memory_budget_mb;
  const fits = Math.floor((budgetMb * 1024 * 1024) / activationBytesPerImage(cfg));
  return Math.max(1, Math.min(rankBatch, fits));
}
