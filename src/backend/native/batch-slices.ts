// Kernels over a large batch (a conv, its input and filter gradients) run a slice of the batch at
// a time. onnxruntime allocates every intermediate of a graph on each run (the sessions keep no
// arena), and the binding a copy of the output; glibc serves a block above its mmap threshold
// (32 MB at most) with fresh pages from the kernel, so a 64 MB output meant 16,384 page faults on
// every call, which took longer than the convolution itself at two threads, and more or less so
// as the machine's load came and went. A slice whose buffers stay under the threshold reuses freed
// memory instead. Above SLICE_BYTES only sliced graphs are offered: a whole-batch graph that won
// its race on a quiet machine could lose badly on a busy one. How many slices is fixed by the
// tensors; which sliced graph runs is left to the race (sessions.ts).
import type { Candidate, Slicing } from './sessions.ts';

/** The most bytes of any one input or output image-slice a sliced graph is given. */
export const SLICE_BYTES = 8 * 2 ** 20;

/**
 * The graphs `graphs(batch)` for the whole batch or, where a batch-wise input (or, with output
 * 'images', the output) exceeds SLICE_BYTES, the same graphs over slices that do not (labelled
 * 'label/slices'). `bytesPerImage` is the largest of those tensors' bytes per image.
 */
export function withBatchSlices(
  graphs: (batch: number) => readonly Candidate[],
  slicing: Pick<Slicing, 'batch' | 'batchInputs' | 'output'> & { bytesPerImage: number },
): Candidate[] {
  const { batch, bytesPerImage, batchInputs, output } = slicing;
  const most = Math.max(1, Math.floor(SLICE_BYTES / bytesPerImage));
  if (most >= batch) return [...graphs(batch)];
  // Slices as even as the batch allows: the last one is the only smaller one.
  const slice = Math.ceil(batch / Math.ceil(batch / most));
  const count = Math.ceil(batch / slice);
  const lastSize = batch - (count - 1) * slice;
  const lastGraphs = lastSize === slice ? undefined : graphs(lastSize);
  return graphs(slice).flatMap((candidate): Candidate[] => {
    const last = lastGraphs?.find((c) => c.label === candidate.label);
    if (lastGraphs !== undefined && last === undefined) return [];
    return [
      { label: `${candidate.label}/${count}`, graph: candidate.graph, slicing: { batch, slice, batchInputs, output, last: last?.graph } },
    ];
  });
}
