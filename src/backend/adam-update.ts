// One Adam update of a variable (src/optim/adam.ts keeps the state and the step count): one pass of
// the SIMD module on wasm (float32), the same arithmetic as tf ops everywhere else. Both round
// every operation to float32 in the same order, so they give the same bits.
import { tf } from '../util/tf.ts';
import { simdKernels } from './simd/module.ts';
import { ADAM_UPDATE, type AdamUpdateAttrs } from './wasm-kernels/kernel-names.ts';

/**
 * [p', m', v'] for parameters p, gradient g and moments m, v: with weight decay g += wd p, then
 * m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2, p' = p - stepSize m' / (sqrt(v') + epsHat).
 */
export function adamUpdate(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  attrs: AdamUpdateAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (simdKernels() !== undefined && [p, g, m, v].every((t) => t.dtype === 'float32')) {
    return tf.engine().runKernel(ADAM_UPDATE, { p, g, m, v }, attrs as unknown as tf.NamedAttrMap) as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  return tf.tidy(() => {
    const decayed = attrs.weightDecay > 0 ? g.add(p.mul(attrs.weightDecay)) : g;
    const m2 = m.mul(attrs.beta1).add(decayed.mul(1 - attrs.beta1));
    const v2 = v.mul(attrs.beta2).add(decayed.square().mul(1 - attrs.beta2));
    return [p.sub(m2.mul(attrs.stepSize).div(v2.sqrt().add(attrs.epsHat))), m2, v2];
  });
}
