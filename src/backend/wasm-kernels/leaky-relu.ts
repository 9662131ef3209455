// LeakyRelu on wasm as one pass of the SIMD module's leaky_relu. TF.js's wasm LeakyRelu is a scalar
// loop (bench:kernels' LeakyRelu case). Other dtypes, and a backend without the module, run the
// stock kernel.
import { tf } from '../../util/tf.ts';
import { simdKernels, type WasmKernelBackend } from '../simd/module.ts';
import { at } from './simd-kernel.ts';
import { overrideStockKernel } from './stock-fallback.ts';

export const leakyReluConfig = overrideStockKernel(tf.LeakyRelu, (args) => {
  const x = args.inputs['x'];
  const kernels = simdKernels();
  if (x === undefined || x.dtype !== 'float32' || kernels === undefined) return undefined;
  const y = (args.backend as unknown as WasmKernelBackend).makeOutput([...x.shape], 'float32');
  const size = tf.util.sizeFromShape(x.shape);
  if (size > 0) kernels.leaky_relu(at(x), at(y), size, (args.attrs as unknown as tf.LeakyReluAttrs).alpha);
  return y;
});
