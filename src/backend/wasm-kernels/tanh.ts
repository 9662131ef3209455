// Tanh on wasm as 2 * sigmoid(2x) - 1. TF.js's wasm Tanh calls libm's scalar tanh per element
// (a decoder's [64,64,64,3] output, bench:kernels' Tanh case); its Sigmoid is XNNPACK's vectorised kernel, and
// the four ops together are several times faster. The identity is exact; in float32 the subtraction near 0 costs
// absolute accuracy of about one float32 step at 1 (6e-8), far below what a [-1, 1] image shows.
// The gradient is unchanged: TF.js differentiates Tanh through its output, dy * (1 - y^2).
import { tf } from '../../util/tf.ts';
import { overridingWasmKernel } from './compose.ts';

export const tanhConfig = overridingWasmKernel(
  tf.Tanh,
  ['x'],
  ({ x }) => x.dtype === 'float32',
  ({ x }) => tf.sub(tf.mul(tf.sigmoid(tf.mul(x, 2)), 2), 1),
);
