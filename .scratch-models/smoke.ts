import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONFIG } from '../src/config/schema.ts';
import { createModel } from '../src/models/index.ts';
import { computeGradients, createOptimizers, applyGradients, disposeGradients } from '../src/train/step.ts';
import { stepNoise } from '../src/train/rng.ts';
await tf.setBackend('cpu');
const m = createModel(DEFAULT_CONFIG.model, 1);
console.log('params', m.paramCount());
m.dispose();
for (const name of ['vae','beta_vae','mssim_vae','cvae','joint_vae','vae_gan'] as const) {
  const cfg = { ...DEFAULT_CONFIG.model, name, image_size: 32, hidden_dims: [8, 16], latent_dim: 4, num_classes: 3, feature_layer: 1 };
  const model = createModel(cfg, 7);
  const opt = createOptimizers(model, DEFAULT_CONFIG.train);
  const images = tf.randomUniform([4, 32, 32, 3], -1, 1) as tf.Tensor4D;
  const labels = tf.oneHot(tf.tensor1d([0,1,2,0],'int32'), 3).toFloat() as tf.Tensor2D;
  let n0 = 0;
  for (let s = 0; s < 6; s++) {
    const g = computeGradients(model, { images, labels }, { step: s, minibatchFraction: 0.01, noise: stepNoise(1, 4, s), training: true });
    applyGradients(opt, g.groups);
    if (s === 0) console.log(name, Object.keys(g.groups), Object.keys(g.groups[Object.keys(g.groups)[0]]).slice(0, 4), Object.fromEntries(Object.entries(g.terms).map(([k, v]) => [k, v.dataSync()[0].toFixed(4)])));
    disposeGradients(g);
    if (s === 2) n0 = tf.memory().numTensors;
  }
  console.log(name, 'leak', tf.memory().numTensors - n0);
  const smp = model.sample(2, stepNoise(1, 5), labels.slice(0, 2)); const rec = model.reconstruct(images, labels);
  console.log(smp.shape, rec.shape); tf.dispose([smp, rec]);
}
