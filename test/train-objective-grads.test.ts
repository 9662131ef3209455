// Several objectives differentiated from one recorded forward pass, checked against hand-computed
// gradients; the recording is released (no tensors left behind) on success and on failure.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { ObjectiveGradsError, objectiveGradients } from '../src/train/objective-grads.ts';

before(async () => {
  await initBackend('wasm');
});

describe('objectiveGradients', () => {
  it('gives each objective the gradient w.r.t. its own variables only, from one forward pass', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'og/a');
    const b = tf.variable(tf.tensor1d([4, 5, 6]), true, 'og/b');
    const c = tf.variable(tf.tensor1d([7]), true, 'og/c');
    const before = tf.memory().numTensors;
    let forwardRuns = 0;
    const { outputs, grads } = objectiveGradients(
      () => {
        forwardRuns++;
        const u = tf.mul(a, b);
        // f1 = sum((ab)^2): d/da = 2ab^2. f2 = sum(ab + b): d/db = a + 1, and a's path through u is not b's business.
        return {
          objectives: {
            first: tf.sum(tf.square(u)) as tf.Scalar,
            second: tf.sum(tf.add(u, b)) as tf.Scalar,
            third: tf.sum(u) as tf.Scalar,
          },
        };
      },
      { first: [a], second: [b], third: [c] },
    );
    assert.equal(forwardRuns, 1);
    assert.deepEqual(Array.from(grads['first']![0]!.dataSync()), [2 * 1 * 16, 2 * 2 * 25, 2 * 3 * 36]);
    assert.deepEqual(Array.from(grads['second']![0]!.dataSync()), [2, 3, 4]);
    assert.deepEqual(Array.from(grads['third']![0]!.dataSync()), [0], 'an objective that does not reach a variable gives it zeros');
    assert.equal(outputs.objectives.first.dataSync()[0], 16 + 100 + 324);
    tf.dispose([outputs, grads['first']!, grads['second']!, grads['third']!]);
    assert.equal(tf.memory().numTensors, before, 'the recorded pass holds nothing once the results are disposed');
    tf.dispose([a, b, c]);
  });

  it('names a missing objective, and leaves no tensors behind when the forward pass or a walk fails', () => {
    const a = tf.variable(tf.tensor1d([1, 2]), true, 'og/fail');
    const before = tf.memory().numTensors;
    assert.throws(
      () => objectiveGradients(() => ({ objectives: { loss: tf.sum(tf.square(a)) as tf.Scalar } }), { loss: [a], critic: [a] }),
      (e: unknown) => e instanceof ObjectiveGradsError && /no objective 'critic' \(got loss\)/.test(e.message),
    );
    assert.equal(tf.memory().numTensors, before);
    assert.throws(
      () =>
        objectiveGradients(
          () => {
            tf.square(a);
            throw new Error('forward failed');
          },
          { loss: [a] },
        ),
      /forward failed/,
    );
    assert.equal(tf.memory().numTensors, before);
    // The engine is usable afterwards: the tape was handed back.
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(a, a)) as tf.Scalar, [a]);
    assert.deepEqual(Array.from(grads[a.name]!.dataSync()), [2, 4]);
    tf.dispose([value, grads, a]);
  });
});
