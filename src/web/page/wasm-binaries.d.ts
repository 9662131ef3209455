// The virtual module ../bundle-page.ts provides: TF.js's wasm binaries, gzipped and base64-encoded.
declare module 'medvae:tfjs-wasm-binaries' {
  export const WASM_SIMD_GZ_BASE64: string;
  export const WASM_PLAIN_GZ_BASE64: string;
}
