// Gradient clipping by global norm (train.grad_clip_norm): hand-computed scaling, and its effect on
// Adam's trajectory checked against Adam written out in float64 here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { clipByGlobalNorm } from '../../src/optim/clip.ts';
import { Adam } from '../../src/optim/adam.ts';
import { GroupOptimizer } from '../../src/train/step.ts';
import { loadConfig } from '../../src/config/load.ts';

await tf.setBackend('cpu');

test('gradients over the norm are scaled together to it; under it they are unchanged', () => {
  // |(3, 0, 4)| = 5: clipped to 1, every entry is divided by 5 (+1e-6).
  const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[4]]) };
  const clipped = clipByGlobalNorm(grads, 1);
  assert.deepEqual(Object.keys(clipped).sort(), ['a', 'b']);
  const a = Array.from(clipped.a!.dataSync());
  const b = Array.from(clipped.b!.dataSync());
  for (const [got, want] of [...a.map((x, i) => [x, [0.6, 0][i]!]), [b[0]!, 0.8]])
    assert.ok(Math.abs(got! - want!) < 1e-6, `${got} vs ${want}`);
  assert.deepEqual(clipped.b!.shape, [1, 1]);
  const loose = clipByGlobalNorm(grads, 10);
  assert.deepEqual(Array.from(loose.a!.dataSync()), [3, 0]);
  assert.deepEqual(Array.from(loose.b!.dataSync()), [4]);
  const before = tf.memory().numTensors;
  tf.dispose([clipped, loose]);
  assert.equal(tf.memory().numTensors, before - 4, 'only the returned tensors remain');
  tf.dispose(grads);
});

/** Adam in float64 (PyTorch's formula), for the expected trajectory. */
function adam64(theta: number, grads: number[], lr: number): number {
  let m = 0;
  let v = 0;
  grads.forEach((g, i) => {
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const mHat = m / (1 - 0.9 ** (i + 1));
    const vHat = v / (1 - 0.999 ** (i + 1));
    theta -= (lr * mHat) / (Math.sqrt(vHat) + 1e-8);
  });
  return theta;
}

test('a param group with grad_clip_norm 1 feeds Adam the clipped gradients (10 -> 1), one without feeds them as they are', () => {
  // Adam's first step ignores the gradient's scale; the second does not, so the two paths part.
  const steps = [10, 0.1];
  const run = (clipNorm: number): number => {
    const w = tf.variable(tf.scalar(1));
    const optimizer = new GroupOptimizer(new Adam({ lr: 0.1 }), { w }, 0.1, clipNorm);
    for (const g of steps) {
      const grad = tf.scalar(g);
      optimizer.applyGradients({ w: grad });
      grad.dispose();
    }
    const out = w.dataSync()[0]!;
    w.dispose();
    optimizer.dispose();
    return out;
  };
  const clipped = run(1);
  const plain = run(0);
  assert.ok(Math.abs(clipped - adam64(1, [10 / (10 + 1e-6), 0.1], 0.1)) < 1e-5, `clipped ${clipped}`);
  assert.ok(Math.abs(plain - adam64(1, steps, 0.1)) < 1e-5, `plain ${plain}`);
  assert.ok(Math.abs(clipped - plain) > 1e-3, `the clip changed nothing: ${clipped} vs ${plain}`);
});

test('train.grad_clip_norm defaults to 0 (off) and refuses a negative value, naming the key', () => {
  assert.equal(loadConfig().train.grad_clip_norm, 0);
  assert.equal(loadConfig({ sets: ['train.grad_clip_norm=1.5'] }).train.grad_clip_norm, 1.5);
  assert.throws(() => loadConfig({ sets: ['train.grad_clip_norm=-1'] }), /train\.grad_clip_norm/);
});
