// Whether the webgpu backend can start here on a software adapter (SwiftShader from Debian's
// chromium, with libvulkan1): tests of it skip, saying why, where it cannot.
import { initBackend } from '../../src/backend/index.ts';

let probe: Promise<string | undefined> | undefined;

/** undefined when webgpu starts (and is then the active backend), else why not. */
export function webgpuUnavailable(): Promise<string | undefined> {
  probe ??= initBackend('webgpu', undefined, { allowSoftwareGpu: true }).then(
    () => undefined,
    (e: Error) => `webgpu cannot start here (install chromium and libvulkan1, as .ci/install-system-deps.sh does): ${e.message}`,
  );
  return probe;
}

/** Runs `fn` with webgpu active, then gives the process back the backend it had. */
export async function onWebgpu<T>(fn: () => Promise<T>): Promise<T> {
  await initBackend('webgpu', undefined, { allowSoftwareGpu: true });
  return fn();
}
