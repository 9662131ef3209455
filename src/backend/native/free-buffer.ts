// Frees an ArrayBuffer's memory at once instead of at some later garbage collection. onnxruntime-
// node's run() returns a fresh copy of every output, though the kernels had it write the output in
// place already: hundreds of MB a step that nothing reads. Left to the collector, those copies pile
// up in memory, and their volume sets off major collections, whose marking takes a core from the
// kernels' threads. Detaching a buffer (ArrayBuffer.prototype.transfer(0)) frees it now.
// Node 22 has transfer(); Node 20's V8 has it behind a flag, which adds it to contexts created after
// it is set: the method is taken from such a context, and works on this context's buffers too.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Transfer = (this: ArrayBuffer, newLength: number) => ArrayBuffer;

let transfer: Transfer | null | undefined;

function findTransfer(): Transfer | null {
  const own = (ArrayBuffer.prototype as { transfer?: Transfer }).transfer;
  if (typeof own === 'function') return own;
  try {
    setFlagsFromString('--harmony-rab-gsab-transfer');
    const fromContext: unknown = runInNewContext('ArrayBuffer.prototype.transfer');
    return typeof fromContext === 'function' ? (fromContext as Transfer) : null;
  } catch {
    return null;
  }
}

/**
 * Frees `buffer`'s memory now, leaving it detached (length 0). Returns false, leaving it to the
 * garbage collector, where this Node cannot detach buffers or this buffer cannot be detached.
 */
export function freeArrayBuffer(buffer: ArrayBuffer): boolean {
  transfer ??= findTransfer();
  if (transfer === null) return false;
  try {
    transfer.call(buffer, 0);
    return true;
  } catch {
    // Not detachable (a WebAssembly memory's buffer, say): it stays as it is.
    return false;
  }
}
