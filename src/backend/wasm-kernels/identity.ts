// Identity on wasm as a second reference to the input's buffer, as the cpu backend does, instead of
// TF.js's wasm kernel, which copies it. The engine clones every tensor a gradient saves through
// Identity: a copy of every activation a VAE-GAN step passes through an identity op. Sharing is safe because
// no kernel writes into an input's buffer (Reshape on wasm already shares the same way).
import * as tf from '@tensorflow/tfjs';
import { stockWasmKernel } from './stock-kernels.ts';

export const identityConfig: tf.KernelConfig = {
  kernelName: tf.Identity,
  backendName: 'wasm',
  kernelFunc: (args) => {
    const x = args.inputs['x'];
    if (x === undefined || x.dtype === 'string') {
      const stock = stockWasmKernel(tf.Identity);
      if (stock === undefined) throw new Error('Identity on wasm: the stock kernel was not kept at registration');
      return stock.kernelFunc(args);
    }
    (args.backend as tf.KernelBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  },
};
