import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../src/config/load.ts';
import { activationBytesPerImage, COPIES_PER_ACTIVATION, resolveMicroBatch } from '../src/train/micro-batch.ts';

test('activation bytes per image follow the conv stacks (hand count for a 2-layer 32x32 model)', () => {
  const cfg = loadConfig({ sets: ['model.image_size=32', 'model.hidden_dims=[8, 16]', 'model.in_channels=3'] });
  // input 32*32*3 + encoder (16*16*8 + 8*8*16) + decoder mirror (same) + full-size 32*32*8 + output 32*32*3
  const elements = 3072 + 2 * (2048 + 1024) + 8192 + 3072;
  assert.equal(activationBytesPerImage(cfg), elements * 4 * COPIES_PER_ACTIVATION);
});

test("micro_batch 'auto' fits the budget: 4 at 256x256 in 3000 MB, the whole rank batch at 64x64; numbers are capped by the rank batch", () => {
  const at256 = loadConfig({ file: 'configs/vaegan_gleason256.yaml' });
  assert.equal(resolveMicroBatch(at256, 32, { name: 'wasm' }), 4);
  assert.ok(resolveMicroBatch(at256, 32, { name: 'wasm' }) * activationBytesPerImage(at256) <= 3000 * 2 ** 20);
  // wasm cannot use more than its 4 GB address space, whatever the budget says.
  const huge = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['train.memory_budget_mb=64000'] });
  assert.equal(resolveMicroBatch(huge, 32, { name: 'wasm' }), Math.floor((3500 * 2 ** 20) / activationBytesPerImage(huge)));
  assert.equal(resolveMicroBatch(huge, 32, { name: 'tensorflow' }), 32);
  const at64 = loadConfig({ sets: ['train.micro_batch=auto'] });
  assert.equal(resolveMicroBatch(at64, 32, { name: 'wasm' }), 32);
  assert.equal(resolveMicroBatch(loadConfig({ sets: ['train.micro_batch=48'] }), 32, { name: 'wasm' }), 32);
});
