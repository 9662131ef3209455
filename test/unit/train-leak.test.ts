// The whole training loop (micro-batches, accumulation, Adam, checks, pictures, checkpoints) holds
// the same number of tensors after step 3 as after step 10, for every model.
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
// 32 images at batch 8: 4 steps an epoch, so 12 steps cross two epoch ends (pictures, checkpoints).
writeTinyNpz(data, { train: 32, val: 8, test: 8 });
const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

for (const name of ['vae', 'beta_vae', 'mssim_vae', 'cvae', 'joint_vae', 'vae_gan']) {
  test(`${name}: tf.memory().numTensors is the same after step 3 and step 10, micro-batches accumulated`, async () => {
    const config = loadConfig({
      file: 'configs/smoke.yaml',
      sets: [
        `model.name=${name}`,
        `data.path=${data}`,
        'train.batch_size=8',
        'train.micro_batch=4',
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
    assert.ok(counts.has(3) && counts.has(10), `steps seen: ${[...counts.keys()]}`);
    assert.equal(counts.get(10), counts.get(3), `tensors after step 3: ${counts.get(3)}, after step 10: ${counts.get(10)}`);
  });
}
