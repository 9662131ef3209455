// Identity on wasm as a second reference to the input's buffer, as the cpu backend does, instead of
// TF.js's wasm kernel, which copies it. The engine clones every tensor a gradient saves through
// Identity: a copy of every activation a VAE-GAN step passes through an identity op. Sharing is safe because
// no kernel writes into an input's buffer (Reshape on wasm already shares the same way).
import { tf } from '../../util/tf.ts';
import { overrideStockKernel } from './stock-fallback.ts';

export const identityConfig = overrideStockKernel(tf.Identity, (args) => {
  const x = args.inputs['x'];
  if (x === undefined || x.dtype === 'string') return undefined;
  (args.backend as tf.KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
});
