// How many images one pass holds (train.micro_batch): the CPU budget, and on WebGPU the model's own
// layer shapes against the adapter's limits and the budget, with numbers counted by hand. train()
// under a small budget on webgpu is in webgpu-kernels.test.ts, whose process has the shaders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { loadConfig } from '../../src/config/load.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import type { AdapterDescription, BackendName } from '../../src/backend/index.ts';
import { createModel } from '../../src/models/index.ts';
import { trainingFootprint } from '../../src/models/footprint.ts';
import {
  activationBytesPerImage,
  COPIES_PER_ACTIVATION,
  gpuFootprint,
  GPU_BYTES_PER_ELEMENT,
  GPU_BYTES_PER_PARAMETER,
  MicroBatchError,
  resolveMicroBatch,
} from '../../src/train/micro-batch.ts';
import { LABEL_WIDTH, MODEL_NAMES, tinyConfig } from '../helpers/models-helpers.ts';

const MiB = 2 ** 20;

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

test("the default is 'auto', and on every CPU backend it keeps the default job and every shipped 64x64 config at 64 images a pass", () => {
  assert.equal(DEFAULT_CONFIG.train.micro_batch, 'auto');
  const cpu: BackendName[] = ['wasm', 'native', 'tensorflow', 'cpu'];
  for (const name of cpu) assert.equal(resolveMicroBatch(loadConfig(), 64, { name }), 64, name);
  for (const file of readdirSync('configs').filter((f) => f.endsWith('.yaml'))) {
    const cfg = loadConfig({ file: join('configs', file) });
    if (cfg.model.image_size !== 64) continue;
    // What these configs ran with before 'auto' became the default: their own number, else 64.
    const before = Math.min(cfg.train.micro_batch === 'auto' ? 64 : cfg.train.micro_batch, cfg.train.batch_size);
    for (const name of cpu) assert.equal(resolveMicroBatch(cfg, cfg.train.batch_size, { name }), before, `${file} on ${name}`);
  }
});

test('the footprint of src/models matches built models: parameters exactly, every conv block a layer output, the largest tensor', async () => {
  await tf.setBackend('cpu');
  for (const name of MODEL_NAMES) {
    for (const overrides of [{}, { image_size: 16, hidden_dims: [8] }, { hidden_dims: [4, 8, 16], in_channels: 1 as const }]) {
      const config = tinyConfig(name, overrides);
      const model = createModel(config, 1, LABEL_WIDTH);
      const footprint = trainingFootprint(config, LABEL_WIDTH);
      const what = `${name} ${JSON.stringify(overrides)}`;
      assert.equal(footprint.parameters, model.paramCount(), what);
      for (const [network, net] of Object.entries(model.networks)) {
        const shapes = new Set(
          net.layers.flatMap((l) => {
            const s = l.outputShape as (number | null)[];
            return s.length === 4 ? [s.slice(1).join('x')] : [];
          }),
        );
        const mine = footprint.activations.filter((a) => a.network === network);
        assert.ok(mine.length > 0, `${what}: no activations of ${network}`);
        for (const a of mine)
          assert.ok(shapes.has(`${a.height}x${a.width}x${a.channels}`), `${what}: ${network} ${a.layer} is no layer's output`);
        const largest = Math.max(...[...shapes].map((s) => s.split('x').reduce((p, d) => p * Number(d), 1)));
        assert.equal(Math.max(...mine.map((a) => a.height * a.width * a.channels)), largest, `${what}: ${network}'s largest layer`);
      }
      model.dispose();
    }
  }
  // The 256x256 VAE-GAN: the parameter count bench:step reports for it (docs/performance.jsonl).
  assert.equal(trainingFootprint(loadConfig({ file: 'configs/vaegan_gleason256.yaml' }).model).parameters, 17368164);
});

function adapter(maxStorageBufferBindingSize: number, maxBufferSize = 2 ** 32): AdapterDescription {
  return {
    index: 0,
    backend: 'vulkan',
    name: 'Test GPU',
    vendor: 'test',
    architecture: '',
    device: '',
    driver: '',
    software: false,
    limits: { maxBufferSize, maxStorageBufferBindingSize },
  };
}

/** configs/smoke.yaml's model: Vanilla VAE, 32x32x3, hidden_dims [8, 16], latent 8. */
function smoke(sets: string[] = []): ReturnType<typeof loadConfig> {
  return loadConfig({ file: 'configs/smoke.yaml', sets: ['train.micro_batch=auto', ...sets] });
}

test('webgpu, by hand: the footprint of the smoke model, and the micro-batch a small binding and a small budget give', () => {
  // Elements per image, forward tensors (conv blocks keep conv, bias add, BatchNorm, LeakyReLU: 4):
  //   encoder: image 32*32*3 x1, conv0 16*16*8 x4, conv1 8*8*16 x4          = 3072 + 8192 + 4096
  //   decoder: dense 8*8*16 x2, deconv0 16*16*8 x4, deconv1 32*32*8 x4,
  //            output 32*32*3 x3 (conv, bias, tanh)                           = 2048 + 8192 + 32768 + 9216
  //   loss:    32*32*3 x4                                                      = 12288
  const elements = 3072 + 8192 + 4096 + 2048 + 8192 + 32768 + 9216 + 12288;
  assert.equal(elements, 79872);
  // Parameters: encoder convs (9*3*8+8 + 2*8) + (9*8*16+16 + 2*16), heads 2*(1024*8+8);
  // decoder dense 8*1024+1024, deconvs (9*16*8+8 + 2*8) + (9*8*8+8 + 2*8), output conv 9*8*3+3.
  const parameters = 240 + 1200 + 16400 + 9216 + 1176 + 600 + 219;
  assert.equal(parameters, 29051);
  const f = gpuFootprint(smoke());
  assert.equal(f.bytesPerImage, elements * GPU_BYTES_PER_ELEMENT);
  assert.equal(f.bytesPerImage, 958464);
  assert.equal(f.fixedBytes, parameters * GPU_BYTES_PER_PARAMETER);
  assert.equal(f.fixedBytes, 697224);
  // The largest tensor: the decoder's full-size block, 32*32*8 float32 = 32768 bytes an image.
  assert.equal(`${f.largest.network} ${f.largest.layer}`, 'decoder deconv1');
  assert.equal(f.largestBytesPerImage, 32768);

  // A 100000-byte binding holds 3 such tensors (98304 bytes). 8 MB holds 3 + the last pass's 1
  // image (16 = 5 x 3 + 1): 697224 + 4 x 958464 = 4531080 <= 8388608.
  assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=8']), 16, { name: 'webgpu', adapter: adapter(100_000) }), 3);
  // maxBufferSize below the binding limit is the one that binds.
  assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=8']), 16, { name: 'webgpu', adapter: adapter(2 ** 30, 70_000) }), 2);
  // A large binding and 5 MB (5242880 bytes): 5 images a pass need 697224 + 5 x 958464 = 5489544,
  // too many; 4 (4 passes of 4) need 4531080.
  assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 16, { name: 'webgpu', adapter: adapter(2 ** 30) }), 4);
  // Of 10 images: 5 (2 x 5) does not fit; 3 passes of 4 leave a pass of 2, whose buffers TF.js keeps
  // beside those of 4: 697224 + (4 + 2) x 958464 > 5242880; 4 passes of 3 (3+3+3+1) fit.
  assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 10, { name: 'webgpu', adapter: adapter(2 ** 30) }), 3);
  // A CPU backend with the same config knows nothing of bindings.
  assert.equal(resolveMicroBatch(smoke(['train.memory_budget_mb=5']), 16, { name: 'wasm' }), 1);
});

test('webgpu: the 256x256 VAE-GAN fits within H100-like limits, and by the binding alone with a large budget', () => {
  // Dawn on an NVIDIA GPU (Vulkan): bindings of 2 GiB - 4, buffers of 4 GiB.
  const h100 = adapter(2 ** 31 - 4, 2 ** 32);
  const at256 = loadConfig({ file: 'configs/vaegan_gleason256.yaml' });
  const f = gpuFootprint(at256);
  // The decoder's full-size block, 256*256*32 float32, for posterior and prior latents: 16 MiB an image.
  assert.equal(`${f.largest.network} ${f.largest.layer} ${f.largest.passes}`, 'decoder deconv4 2');
  assert.equal(f.largestBytesPerImage, 2 * 256 * 256 * 32 * 4);
  // 3000 MB (the default budget): 4 images a pass, 16 passes for 64 images.
  const micro = resolveMicroBatch(at256, 64, { name: 'webgpu', adapter: h100 });
  assert.equal(micro, 4);
  assert.ok(f.fixedBytes + micro * f.bytesPerImage <= 3000 * MiB);
  // 5 a pass (12 x 5 + 4) holds the buffers of 5 and of 4 images.
  assert.ok(f.fixedBytes + (5 + 4) * f.bytesPerImage > 3000 * MiB);
  // 60000 MB: the whole rank batch of 64; WebGPU's default 128 MiB binding holds 8 such tensors.
  const big = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['train.memory_budget_mb=60000'] });
  assert.equal(resolveMicroBatch(big, 64, { name: 'webgpu', adapter: h100 }), 64);
  assert.equal(resolveMicroBatch(big, 64, { name: 'webgpu', adapter: adapter(128 * MiB) }), 8);
  // 256 images: 127 tensors fit a binding, about 117 images the budget; 2 passes of 128 and 3 of
  // 86 (+84) do not fit, 4 passes of 64 do.
  assert.equal(resolveMicroBatch(big, 256, { name: 'webgpu', adapter: h100 }), 64);
});

test('webgpu: a model that cannot fit one image, or a number that cannot be bound, is refused in one line naming the limit, the size and what to do', () => {
  const oneLine = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof MicroBatchError, String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  };
  // A 1 MB budget cannot hold the smoke model's 0.66 MB of weights and state plus one 0.91 MB image.
  assert.throws(
    () => resolveMicroBatch(smoke(['train.memory_budget_mb=1']), 16, { name: 'webgpu', adapter: adapter(2 ** 30) }),
    oneLine(
      /^train\.micro_batch auto: one 32x32 image of vae needs about 1\.6 MB of GPU memory \(0\.91 MB of activations, 0\.66 MB of weights and optimizer state\), more than train\.memory_budget_mb \(1 MB\): raise train\.memory_budget_mb .*model\.image_size or model\.hidden_dims, or a GPU with more memory$/,
    ),
  );
  // A binding smaller than one image's largest tensor.
  assert.throws(
    () => resolveMicroBatch(smoke(), 16, { name: 'webgpu', adapter: adapter(30_000) }),
    oneLine(
      /^train\.micro_batch auto: one image needs a 0\.031 MB tensor \(decoder deconv1: 1 x 32x32x8 float32 at 32x32\), more than Test GPU's largest storage buffer \(0\.029 MB, WebGPU limit maxStorageBufferBindingSize\): use a smaller model\.image_size or model\.hidden_dims, or a GPU with larger limits$/,
    ),
  );
  // An explicit number whose tensors WebGPU could not bind (it would skip those kernels).
  assert.throws(
    () => resolveMicroBatch(smoke(['train.micro_batch=8']), 16, { name: 'webgpu', adapter: adapter(100_000) }),
    oneLine(
      /^train\.micro_batch 8 needs a 0\.25 MB tensor \(decoder deconv1: 8 x 32x32x8 float32 at 32x32\), .*: use train\.micro_batch: auto or at most 3$/,
    ),
  );
  assert.equal(resolveMicroBatch(smoke(['train.micro_batch=3']), 16, { name: 'webgpu', adapter: adapter(100_000) }), 3);
  // 1024x1024 VAE-GAN: one image's decoder output block is 2 x 1024*1024*32 float32, 256 MiB.
  const at1024 = loadConfig({ file: 'configs/vaegan_gleason256.yaml', sets: ['model.image_size=1024'] });
  assert.throws(
    () => resolveMicroBatch(at1024, 64, { name: 'webgpu', adapter: adapter(128 * MiB) }),
    oneLine(
      /one image needs a 256 MB tensor \(decoder deconv4: 2 x 1024x1024x32 float32 at 1024x1024\), more than Test GPU's largest storage buffer \(128 MB/,
    ),
  );
});
