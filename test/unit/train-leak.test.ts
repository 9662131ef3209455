// The whole training loop (micro-batches, accumulation, Adam, checks, pictures, checkpoints) holds
// the same number of tensors after step 2 as after step 6, for every model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/util/tf.ts';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { train } from '../../src/train/trainer.ts';
import type { Progress } from '../../src/run/progress.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('medvae-leak-');
const data = join(dir, 'tiny.npz');
// 8 images at batch 4: 2 steps an epoch, so between step 2 (before the first epoch's end) and step
// 6 lie two epoch ends (pictures, checkpoints). 16x16: a leak is a count of tensors, whatever
// their size; a step costs its ops, not its pixels.
writeTinyNpz(data, { train: 8, val: 4, test: 4, size: 16 });
const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

for (const name of ['vae', 'beta_vae', 'mssim_vae', 'cvae', 'joint_vae', 'vae_gan']) {
  test(`${name}: tf.memory().numTensors is the same after step 2 and step 6, micro-batches accumulated`, async () => {
    const config = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        `model.name=${name}`,
        `data.path=${data}`,
        'model.image_size=16',
        'train.batch_size=4',
        'train.micro_batch=2',
        'train.epochs=3',
        'train.backend=wasm',
        'model.feature_layer=1',
        'output.sample_grid=4',
      ],
    });
    const counts = new Map<number, number>();
    await train({
      config,
      runDir: join(dir, name),
      progress: quiet,
      hooks: {
        onStep: (info) => {
          counts.set(info.step, tf.memory().numTensors);
        },
      },
    });
    assert.ok(counts.has(2) && counts.has(6), `steps seen: ${[...counts.keys()]}`);
    assert.equal(counts.get(6), counts.get(2), `tensors after step 2: ${counts.get(2)}, after step 6: ${counts.get(6)}`);
  });
}
