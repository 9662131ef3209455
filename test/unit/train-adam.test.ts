import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { Adam } from '../../src/optim/adam.ts';

await tf.setBackend('cpu');

test('one Adam step matches the hand-computed update', () => {
  // theta 1, g 0.5, lr 0.1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
  // update = 0.1 * 0.5 / (0.5 + eps) = 0.1 -> theta 0.9.
  const theta = tf.variable(tf.scalar(1));
  const adam = new Adam({ lr: 0.1 });
  const g = tf.scalar(0.5);
  adam.applyGradients({ theta }, { theta: g });
  assert.ok(Math.abs(theta.dataSync()[0]! - 0.9) < 1e-6);
  // Second step, same gradient: m = 0.095, v = 0.00049975, m_hat = 0.095/0.19 = 0.5,
  // v_hat = 0.00049975/0.001999 = 0.25 -> the update is again 0.1.
  adam.applyGradients({ theta }, { theta: g });
  assert.ok(Math.abs(theta.dataSync()[0]! - 0.8) < 1e-6);
  tf.dispose([theta, g]);
  adam.dispose();
});

test('weight decay adds wd * theta to the gradient (PyTorch Adam semantics)', () => {
  const a = tf.variable(tf.tensor1d([2, -3]));
  const b = tf.variable(tf.tensor1d([2, -3]));
  const withDecay = new Adam({ lr: 0.01, weightDecay: 0.1 });
  const plain = new Adam({ lr: 0.01 });
  const g = tf.tensor1d([0.3, 0.4]);
  const gPlusDecay = tf.tensor1d([0.3 + 0.2, 0.4 - 0.3]);
  withDecay.applyGradients({ w: a }, { w: g });
  plain.applyGradients({ w: b }, { w: gPlusDecay });
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  tf.dispose([a, b, g, gPlusDecay]);
  withDecay.dispose();
  plain.dispose();
});

test('state saved and restored into a fresh optimizer continues bit for bit', () => {
  const grads = [0.3, -0.2, 0.7, 0.1, -0.5].map((v) => tf.tensor1d([v, v * 2, -v]));
  const run = (restoreAfter: number | undefined): Float32Array => {
    const w = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3])));
    let opt = new Adam({ lr: 0.05 });
    grads.forEach((g, i) => {
      if (i === restoreAfter) {
        const { step, tensors } = opt.state();
        const copies = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.clone()]));
        opt.dispose();
        opt = new Adam({ lr: 0.05 });
        opt.restore(step, copies);
        tf.dispose(copies);
      }
      opt.applyGradients({ w }, { w: g });
    });
    const out = w.dataSync() as Float32Array;
    w.dispose();
    opt.dispose();
    return out;
  };
  const before = tf.memory().numTensors;
  assert.deepEqual(run(undefined), run(2));
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked by apply/state/restore/dispose');
  tf.dispose(grads);
});
