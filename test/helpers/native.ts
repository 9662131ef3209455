// Whether the native backend's onnxruntime-node binding loads here: tests of it skip, saying why, where it does not.
import { loadBinding } from '../../src/backend/native/kernels.ts';

export function nativeUnavailable(): string | undefined {
  try {
    loadBinding();
    return undefined;
  } catch (e) {
    return `onnxruntime-node cannot load here: ${(e as Error).message}`;
  }
}
