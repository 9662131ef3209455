// MedvaeCol2Im: adds each row of cols (what one conv output position sends back to the input pixels
// under its filter) into dx where it lands; ./conv2d-backprop-input.ts's GEMM path ends with it.
import { tf } from '../../util/tf.ts';
import { SimdKernelError } from '../simd/module.ts';
import { COL2IM, type Col2ImAttrs } from './kernel-names.ts';
import { at, simdKernel } from './simd-kernel.ts';

export const col2imConfig = simdKernel(COL2IM, ['cols'], (kernels, [cols], backend, attrs) => {
  const a = attrs as unknown as Col2ImAttrs;
  const [images, rows, width, channels] = a.inputShape;
  const expected = images * a.outHeight * a.outWidth * a.filterHeight * a.filterWidth * channels;
  if (tf.util.sizeFromShape(cols.shape) !== expected || channels % 4 !== 0) {
    throw new SimdKernelError(
      `${COL2IM}: cols of shape [${cols.shape.join(',')}] do not hold ${expected} values in whole vectors of channels (${channels})`,
    );
  }
  const dx = backend.makeOutput([...a.inputShape], 'float32');
  kernels.col2im(
    at(cols),
    at(dx),
    images,
    a.outHeight,
    a.outWidth,
    rows,
    width,
    channels,
    a.filterHeight,
    a.filterWidth,
    a.strideHeight,
    a.strideWidth,
    a.padTop,
    a.padLeft,
  );
  return dx;
});
