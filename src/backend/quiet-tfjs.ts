// TF.js's pure-JS cpu backend prints "Hi, looks like you are running TensorFlow.js in Node.js. To
// speed things up dramatically, install our node backend ..." on the first tensor it holds, in any
// Node.js process without tfjs-node. medvae says itself which backend it chose and why (and how to
// get a faster one), so the banner is only noise, printed again in every worker and test process.
//
// Imported first by backend/index.ts, which every command, worker, bench script and the library
// API (initBackend) pass through; `npm test` preloads it too (test/helpers/preload.mjs) for the
// tests that compute on TF.js directly. It silences that banner and nothing else: tfjs-core's PROD
// and IS_TEST flags would also hide every other TF.js warning (IS_TEST also turns on leak checks in
// every kernel).
// The backend prints the banner when its instance's `firstUse` is true, a field its constructor
// assigns; an accessor on the prototype takes that assignment and always reads false.
import { createRequire } from 'node:module';

/** Whether the banner is off (false when TF.js changed and this no longer applies: the banner then shows, nothing breaks). */
export const TFJS_BANNER_SILENCED = silenceCpuBanner();

function silenceCpuBanner(): boolean {
  try {
    // The cpu backend TF.js itself loads: resolved from @tensorflow/tfjs, not from this package.
    const require = createRequire(import.meta.url);
    const fromTfjs = createRequire(require.resolve('@tensorflow/tfjs'));
    const { MathBackendCPU } = fromTfjs('@tensorflow/tfjs-backend-cpu') as { MathBackendCPU?: { prototype: object } };
    if (!MathBackendCPU) return false;
    Object.defineProperty(MathBackendCPU.prototype, 'firstUse', {
      configurable: true,
      get: () => false,
      set: () => undefined,
    });
    return true;
  } catch {
    return false;
  }
}
