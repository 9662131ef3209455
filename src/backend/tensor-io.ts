// Copying float32 tensor values to and from plain arrays that the caller owns and reuses.
//
// dataSync() hands back a fresh array per call. For the all-reduce that is every gradient of the model (the Vanilla VAE's
// gradients) allocated and dropped every step, and in a training process with a large heap the
// garbage collections this external memory triggers cost tens of milliseconds per step (measured
// with --cpu-prof on a medvae-dist worker). On wasm the values are read straight out of the module's
// heap instead; other backends are read with data(), asynchronously: a GPU backend cannot hand
// values back synchronously at all (tfjs-backend-webgpu's dataSync needs an OffscreenCanvas, which
// Node lacks), and the training step must not wait for the device inside it.
import { tf } from '../util/tf.ts';

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

/**
 * Starts writing the tensors' values end to end into `target` (which must hold totalSize of them).
 * On wasm the values are copied straight from the heap before this returns, and it returns
 * undefined. Elsewhere each tensor is read with data(), and the promise returned settles once
 * every value is in `target`; the reads hold their own reference to the tensors' data, so the
 * caller may dispose the tensors at once either way.
 */
export function startReadInto(tensors: readonly tf.Tensor[], target: Float32Array): Promise<void> | undefined {
  const size = totalSize(tensors);
  if (target.length !== size) throw new RangeError(`readInto: target holds ${target.length} floats, the tensors ${size}`);
  const bad = tensors.find((t) => t.dtype !== 'float32');
  if (bad) throw new TypeError(`readInto: tensor of dtype ${bad.dtype}, expected float32`);
  const store = wasmStore();
  const pending: Promise<void>[] = [];
  let offset = 0;
  for (const t of tensors) {
    const entry = store?.dataIdMap.get(t.dataId);
    if (store && entry) {
      target.set(new Float32Array(store.wasm.HEAPU8.buffer, entry.memoryOffset, t.size), offset);
    } else {
      // A second reference to the same data (no copy on cpu or webgpu), kept out of any tf.tidy
      // scope: a backend that is still reading must not see the data freed under it.
      const held = tf.keep(tf.clone(t));
      const at = offset;
      pending.push(
        held
          .data<'float32'>()
          .then((values) => target.set(values, at))
          .finally(() => held.dispose()),
      );
    }
    offset += t.size;
  }
  return pending.length === 0 ? undefined : Promise.all(pending).then(() => undefined);
}

/** Writes the tensors' values end to end into `target` (see startReadInto); settles once all are there. */
export async function readInto(tensors: readonly tf.Tensor[], target: Float32Array): Promise<void> {
  await startReadInto(tensors, target);
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
