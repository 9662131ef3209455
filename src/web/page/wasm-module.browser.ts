// Stands in for src/util/wasm-module.ts in the page's bundle: the project's own SIMD kernels are
// loaded from a file beside the Node.js code and only for training; the page runs TF.js's stock
// kernels, so the module loader is never called there.
export function loadWasmModule(file: URL): never {
  throw new Error(`${file.href}: the project's SIMD kernels are not loaded in the browser`);
}
