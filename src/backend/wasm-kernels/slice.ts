// Slice on wasm. TF.js's wasm kernel first copies the whole input out of the wasm heap
// (readSync), then copies the slice back in, a round trip through JS memory for every slice. Here
// the slice is copied heap to heap, one contiguous run at a time (~memcpy speed). String tensors
// and scalars run the stock kernel.
import { tf } from '../../util/tf.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { overrideStockKernel } from './stock-fallback.ts';

/** Copies the slice (begin, size) of `source`, shaped `shape`, into `target` (row-major). */
function copySlice(
  source: tf.backend_util.TypedArray,
  target: tf.backend_util.TypedArray,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
): void {
  const strides = [...tf.util.computeStrides([...shape]), 1];
  // The axes after `split` are taken whole: each index of the axes before it is one run.
  let split = shape.length - 1;
  while (split > 0 && begin[split] === 0 && size[split] === shape[split]) split--;
  const run = size.slice(split).reduce((a, b) => a * b, 1);
  const outer = size.slice(0, split);
  const runs = outer.reduce((a, b) => a * b, 1);
  const index = new Array<number>(split).fill(0);
  for (let r = 0, written = 0; r < runs; r++, written += run) {
    let offset = begin[split] * strides[split];
    for (let axis = 0; axis < split; axis++) offset += (begin[axis] + index[axis]) * strides[axis];
    target.set(source.subarray(offset, offset + run), written);
    for (let axis = split - 1; axis >= 0; axis--) {
      if (++index[axis] < outer[axis]) break;
      index[axis] = 0;
    }
  }
}

export const sliceConfig = overrideStockKernel(tf.Slice, (args) => {
  const x = args.inputs['x'];
  const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
  if (x === undefined) throw new Error(`Slice on wasm: missing input 'x'`);
  if (x.dtype === 'string' || x.shape.length === 0) return undefined;
  const backend = args.backend as BackendWasm;
  const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size);
  const out = backend.makeOutput(size_, x.dtype);
  if (tf.util.sizeFromShape(size_) === 0) return out;
  // Views taken after makeOutput: allocating it may grow the heap, detaching older views.
  copySlice(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out), x.shape, begin_, size_);
  return out;
});
