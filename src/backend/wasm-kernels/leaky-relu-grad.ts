// MedvaeLeakyReluGrad: dx = x > 0 ? dy : alpha * dy in one pass, the gradient ../channel-ops.ts's
// leakyReluGrad runs instead of a Step and a Mul.
import { tf } from '../../util/tf.ts';
import { LEAKY_RELU_GRAD } from './kernel-names.ts';
import { at, sameShape, simdKernel } from './simd-kernel.ts';

export const leakyReluGradConfig = simdKernel(LEAKY_RELU_GRAD, ['dy', 'x'], (kernels, [dy, x], backend, attrs) => {
  sameShape(LEAKY_RELU_GRAD, x.shape, { dy });
  const dx = backend.makeOutput([...x.shape], 'float32');
  const size = tf.util.sizeFromShape(x.shape);
  if (size > 0) kernels.leaky_relu_grad(at(dy), at(x), at(dx), size, attrs['alpha'] as number);
  return dx;
});
