import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, type StepReport } from '../../src/run/progress.ts';

/** A stand-in for process.stderr that records what is written. */
function sink(isTTY: boolean, columns?: number): NodeJS.WriteStream & { text: string } {
  const s = {
    text: '',
    isTTY,
    columns,
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

const report = (step: number): StepReport => ({
  epoch: 0,
  epochs: 2,
  stepInEpoch: step,
  stepsPerEpoch: 10,
  step,
  totalSteps: 20,
  terms: { loss: 0.5, kld: 12345.678 },
  imagesPerSecond: 41.25,
  lr: 0.005,
});

test('plain output: one line every N steps and at the end of an epoch, with ETA, throughput and terms', () => {
  const out = sink(false);
  const progress = createProgress('auto', { everySteps: 5, stream: out });
  for (let s = 0; s < 10; s++) progress.step(report(s));
  const lines = out.text.trim().split('\n');
  assert.deepEqual(
    lines.map((l) => /step (\d+)\/10/.exec(l)?.[1]),
    ['1', '6', '10'],
  );
  assert.match(lines[0]!, /^epoch 1\/2 step 1\/10 \| ETA \d+m\d\ds \| 41\.3 img\/s \| lr 5\.00e-3 \| loss 0\.5000 kld 1\.235e\+4$/);
});

test('a terminal gets one redrawn bar, cut to its width, and a newline before other messages', () => {
  const out = sink(true, 60);
  const progress = createProgress('auto', { everySteps: 5, stream: out });
  progress.step(report(0));
  progress.step(report(1));
  progress.info('checkpoint saved');
  const frames = out.text.split('\r').filter(Boolean);
  assert.equal(frames.length, 2);
  for (const f of frames) assert.ok(f.replace('\x1b[K', '').split('\n')[0]!.length <= 59, f);
  assert.match(out.text, /\ncheckpoint saved\n$/);
});

test('json output: parseable objects with the step fields, counted from 1 as the plain line counts them', () => {
  const out = sink(false);
  const progress = createProgress('json', { everySteps: 1, stream: out });
  progress.info('hello');
  progress.step(report(3));
  const [info, step] = out.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(info!.message, 'hello');
  assert.equal(step!.event, 'step');
  // report(3) is the fourth step of the first epoch: the plain line says "epoch 1/2 step 4/10".
  assert.deepEqual([step!.epoch, step!.epochs, step!.stepInEpoch, step!.stepsPerEpoch, step!.step], [1, 2, 4, 10, 4]);
  const plain = sink(false);
  createProgress('plain', { everySteps: 1, stream: plain }).step(report(3));
  assert.match(plain.text, /^epoch 1\/2 step 4\/10 /);
});
