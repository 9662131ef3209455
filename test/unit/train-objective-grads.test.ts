// Several objectives differentiated from one recorded forward pass, checked against hand-computed
// gradients; the recording is released (no tensors left behind) on success and on failure.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { type ObjectiveGradients, ObjectiveGradsError, objectiveGradientWalk, runToEnd } from '../../src/train/objective-grads.ts';

/** The walk run to the end: the gradients of every objective at once. */
function objectiveGradients<T extends tf.TensorContainerObject & { objectives: Record<string, tf.Scalar> }>(
  forward: () => T,
  variables: Record<string, readonly tf.Variable[]>,
): ObjectiveGradients<T> {
  return runToEnd(objectiveGradientWalk(forward, variables));
}

before(async () => {
  await initBackend('wasm');
});

describe('objectiveGradientWalk', () => {
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

  it('hands each gradient over as soon as the walk is past its first use, last layer first, and frees everything when stopped early', () => {
    const a = tf.variable(tf.tensor1d([1, 2]), true, 'og/layer0');
    const b = tf.variable(tf.tensor1d([3, 4]), true, 'og/layer1');
    const c = tf.variable(tf.tensor1d([5, 6]), true, 'og/layer2');
    const x = tf.tensor1d([0.5, -1]);
    // Three "layers" in tape order a, b, c: y = sum(((x a) b) c).
    const forward = () => ({ objectives: { loss: tf.sum(tf.mul(tf.mul(tf.mul(x, a), b), c)) as tf.Scalar } });
    const before = tf.memory().numTensors;
    const handed: { name: string; afterYields: number; values: number[] }[] = [];
    let yields = 0;
    const walk = objectiveGradientWalk(forward, { loss: [a, b, c] }, (objective, index, grad) => {
      assert.equal(objective, 'loss');
      handed.push({ name: ['a', 'b', 'c'][index]!, afterYields: yields, values: Array.from(grad.dataSync()) });
    });
    let next = walk.next();
    for (; !next.done; next = walk.next()) yields++;
    const { outputs, grads } = next.value;
    assert.deepEqual(
      handed.map((h) => h.name),
      ['c', 'b', 'a'],
    );
    assert.ok(handed[0]!.afterYields < handed[2]!.afterYields, `c before the walk reached a: ${JSON.stringify(handed)}`);
    assert.ok(handed[2]!.afterYields < yields, 'a before the walk ended');
    // d/da = x b c, d/db = x a c, d/dc = x a b; what was handed over is what the walk returns.
    assert.deepEqual(handed[2]!.values, [0.5 * 3 * 5, -1 * 4 * 6]);
    assert.deepEqual(handed[1]!.values, [0.5 * 1 * 5, -1 * 2 * 6]);
    assert.deepEqual(handed[0]!.values, [0.5 * 1 * 3, -1 * 2 * 4]);
    handed.forEach((h, k) => assert.deepEqual(Array.from(grads['loss']![2 - k]!.dataSync()), h.values));
    tf.dispose([outputs, grads['loss']!]);
    assert.equal(tf.memory().numTensors, before);

    const stopped = objectiveGradientWalk(forward, { loss: [a, b, c] });
    stopped.next();
    stopped.return(undefined as never);
    assert.equal(tf.memory().numTensors, before, 'a walk stopped after its first kernel holds nothing');
    tf.dispose([a, b, c, x]);
  });
});
