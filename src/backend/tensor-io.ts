// Copying float32 tensor values to and from plain arrays that the caller owns and reuses.
//
// dataSync() hands back a fresh array per call. For the all-reduce that is every gradient of the model (the Vanilla VAE's
// gradients) allocated and dropped every step, and in a training process with a large heap the
// garbage collections this external memory triggers cost tens of milliseconds per step (measured
// with --cpu-prof on a medvae-dist worker). On wasm the values are read straight out of the module's
// heap instead; other backends fall back to dataSync().
import * as tf from '@tensorflow/tfjs';

interface WasmTensorStore {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}

function wasmStore(): WasmTensorStore | undefined {
  return tf.getBackend() === 'wasm' ? (tf.backend() as unknown as WasmTensorStore) : undefined;
}

/** The number of elements of all the tensors together. */
export function totalSize(tensors: readonly tf.Tensor[]): number {
  return tensors.reduce((n, t) => n + t.size, 0);
}

/** Writes the tensors' values end to end into `target` (which must hold totalSize of them). */
export function readInto(tensors: readonly tf.Tensor[], target: Float32Array): void {
  const size = totalSize(tensors);
  if (target.length !== size) throw new RangeError(`readInto: target holds ${target.length} floats, the tensors ${size}`);
  const store = wasmStore();
  let offset = 0;
  for (const t of tensors) {
    if (t.dtype !== 'float32') throw new TypeError(`readInto: tensor of dtype ${t.dtype}, expected float32`);
    const entry = store?.dataIdMap.get(t.dataId);
    if (store && entry) {
      target.set(new Float32Array(store.wasm.HEAPU8.buffer, entry.memoryOffset, t.size), offset);
    } else {
      target.set(t.dataSync() as Float32Array, offset);
    }
    offset += t.size;
  }
}

/**
 * New tensors of the given shapes from consecutive stretches of `values` (caller disposes). Each
 * gets its own copy of its values, so `values` may be overwritten afterwards: the wasm backend
 * copies on upload, the cpu backend would keep the view, so it is given a copy.
 */
export function tensorsFrom(values: Float32Array, shapes: readonly number[][]): tf.Tensor[] {
  const copies = wasmStore() === undefined;
  let offset = 0;
  return shapes.map((shape) => {
    const size = tf.util.sizeFromShape(shape);
    const view = values.subarray(offset, offset + size);
    offset += size;
    return tf.tensor(copies ? view.slice() : view, shape, 'float32');
  });
}
