// The page's backends in the order it tries them, and how it names each to a reader (plain data: the tests import it too).
export const BACKEND_ORDER = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];

/** What the page says about each backend, for a reader who does not know the names. */
export const BACKEND_LABELS: Record<BackendName, string> = {
  webgpu: 'WebGPU (your graphics card)',
  webgl: 'WebGL (your graphics card)',
  wasm: 'WebAssembly (your processor; no usable graphics card was found)',
  cpu: 'plain JavaScript (your processor; slowest)',
};
