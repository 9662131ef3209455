// MedvaeAdamUpdate: one Adam step of a variable, [p', m', v'] from p, g, m, v in one pass, the
// kernel ../adam-update.ts runs on wasm.
import { tf } from '../../util/tf.ts';
import { ADAM_UPDATE, type AdamUpdateAttrs } from './kernel-names.ts';
import { at, sameShape, simdKernel } from './simd-kernel.ts';

export const adamUpdateConfig = simdKernel(ADAM_UPDATE, ['p', 'g', 'm', 'v'], (kernels, [p, g, m, v], backend, attrs) => {
  sameShape(ADAM_UPDATE, p.shape, { g, m, v });
  const a = attrs as unknown as AdamUpdateAttrs;
  const outputs = [p, m, v].map(() => backend.makeOutput([...p.shape], 'float32'));
  const [pOut, mOut, vOut] = outputs;
  kernels.adam(
    at(p),
    at(g),
    at(m),
    at(v),
    at(pOut),
    at(mOut),
    at(vOut),
    tf.util.sizeFromShape(p.shape),
    a.weightDecay > 0 ? 1 : 0,
    a.weightDecay,
    a.beta1,
    1 - a.beta1,
    a.beta2,
    1 - a.beta2,
    a.stepSize,
    a.epsHat,
  );
  return outputs;
});
