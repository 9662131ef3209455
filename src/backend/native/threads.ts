// How many threads the native kernels compute with. One process takes every core unless
// train.threads (--threads) says otherwise; the workers of medvae-dist on one machine share the
// cores (workers x threads <= cores) unless threads were asked for.
import { availableParallelism } from 'node:os';

/** Set by medvae-dist for its workers: how many worker processes share this machine's cores. */
export const LOCAL_WORKERS_ENV = 'MEDVAE_LOCAL_WORKERS';

/** The threads for `requested` (train.threads; 0 = decide): the cores, shared among the local workers. */
export function resolveThreads(
  requested: number | undefined,
  cores: number = availableParallelism(),
  localWorkers: number = Number(process.env[LOCAL_WORKERS_ENV] ?? '1'),
): number {
  if (requested !== undefined && requested > 0) return requested;
  const workers = Number.isInteger(localWorkers) && localWorkers > 0 ? localWorkers : 1;
  return Math.max(1, Math.floor(cores / workers));
}

/** A warning when asked-for threads oversubscribe the cores (undefined when they fit). */
export function oversubscription(threads: number, workers: number, cores: number = availableParallelism()): string | undefined {
  if (threads <= 0 || threads * workers <= cores) return undefined;
  return `warning: train.threads=${threads} x ${workers} workers = ${threads * workers} threads on ${cores} cores (asked for, so kept; leave train.threads at 0 to share the cores)`;
}
