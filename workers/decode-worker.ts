// A piscina worker: decodes and transforms one batch (see src/data/decode.ts) and hands the image
// buffer back by transfer, not by copy.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import sharp from 'sharp';
import { decodeBatch, type DecodeTask } from '../src/data/decode.ts';

// Parallelism comes from the pool's threads; libvips' own thread pool (process-wide) would only
// oversubscribe the cores.
sharp.concurrency(1);
// Every image is decoded once per epoch from a fresh buffer: libvips' operation cache only holds memory.
sharp.cache(false);

/** Resolves, on the pool's side, to the DecodeResult; its image buffer is moved, not copied. */
export default async function decode(task: DecodeTask): Promise<ReturnType<typeof move>> {
  const result = await decodeBatch(task);
  return move({ [transferableSymbol]: [result.images.buffer], [valueSymbol]: result });
}
