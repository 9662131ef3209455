// Which TF.js backend the page computes on: the viewer's GPU through WebGPU or WebGL when the
// browser offers one (WebGL only on a real graphics card), else WebAssembly, else plain JavaScript. The wasm binaries travel inside the
// script (gzipped) and are handed to TF.js as in-memory blob URLs: nothing is fetched from a
// server, and the page works from file://.
import { tf } from '../../util/tf.ts';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { WASM_PLAIN_GZ_BASE64, WASM_SIMD_GZ_BASE64 } from 'medvae:tfjs-wasm-binaries';
import { BACKEND_ORDER, type BackendName } from './backend-names.ts';

async function blobUrlOfGzip(base64: string): Promise<string> {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  const wasm = await new Response(stream).arrayBuffer();
  return URL.createObjectURL(new Blob([wasm], { type: 'application/wasm' }));
}

async function prepareWasm(): Promise<void> {
  const [simd, plain] = await Promise.all([blobUrlOfGzip(WASM_SIMD_GZ_BASE64), blobUrlOfGzip(WASM_PLAIN_GZ_BASE64)]);
  // Threads need a cross-origin-isolated page, which neither file:// nor a plain static server gives.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths({ 'tfjs-backend-wasm.wasm': plain, 'tfjs-backend-wasm-simd.wasm': simd, 'tfjs-backend-wasm-threaded-simd.wasm': simd });
}

/** Whether WebGL draws in software (SwiftShader, llvmpipe): the browser found no graphics card it may use. */
export function webglIsSoftware(): boolean {
  const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
  const info = gl?.getExtension('WEBGL_debug_renderer_info');
  const renderer = gl && info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : '';
  return /swiftshader|llvmpipe|software/i.test(renderer);
}

/** Sets the first backend of the order (from `requested` on, when given) that starts here; returns its name. */
export async function startBackend(requested?: BackendName): Promise<BackendName> {
  const order = requested ? BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(requested)) : BACKEND_ORDER;
  for (const name of order) {
    if (name === 'webgpu' && !('gpu' in navigator)) continue;
    // WebGL drawn in software runs on the same processor as WebAssembly, only more slowly (and
    // headless screenshots may not wait for its reads): taken only when asked for (?backend=webgl).
    if (name === 'webgl' && requested !== 'webgl' && webglIsSoftware()) continue;
    if (name === 'wasm') await prepareWasm();
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // A backend that fails to start (no adapter, no context) leaves the next one to try.
    }
  }
  throw new Error('no TensorFlow.js backend could start in this browser');
}
