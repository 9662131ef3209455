// No synchronous read-back on any path a GPU run takes. tfjs-backend-webgpu cannot read a tensor
// synchronously in Node (its dataSync needs an OffscreenCanvas), and a step that waits for the
// device mid-step stalls it on every backend. Checked three ways: no dataSync/arraySync/bufferSync
// in the source (outside the wasm-only kernels); training, pictures, checkpoints, sampling,
// evaluation and restoration on the cpu backend with every synchronous read made to throw; and two
// VAE-GAN steps on webgpu (SwiftShader) where it can start, in webgpu-kernels.test.ts, whose
// process has compiled that model's shaders already. Also: the VAE-GAN's balanced-game gates, now
// computed on the device, are the host's rule.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { initBackend } from '../../src/backend/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { ModelName } from '../../src/config/schema.ts';
import { createModel } from '../../src/models/index.ts';
import { computeGradients, disposeGradients } from '../../src/train/step.ts';
import { loadRun } from '../../src/run/checkpoint.ts';
import { sample } from '../../src/generate/sample.ts';
import { reconstruct } from '../../src/generate/reconstruct.ts';
import { evalRun } from '../../src/eval/run-eval.ts';
import { restorationMetrics } from '../../src/restore/restore-eval.ts';
import { context, disposeBatch, fixedBatch, tinyConfig } from '../helpers/models-helpers.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { assertGates, SyncReadTrap, twoSteps } from '../helpers/sync-read-trap.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** Only ever run on the wasm backend, where a synchronous read is a copy out of the heap. */
const WASM_ONLY = ['src/backend/wasm-kernels/', 'src/backend/native/'];
const SYNC_READ = /\.\s*(dataSync|arraySync|bufferSync|print)\s*\(/g;

/** The source with comments blanked out (strings kept, so a '//' in a URL is not a comment). */
function withoutComments(source: string): string {
  let out = '';
  let i = 0;
  let quote: string | undefined;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (quote) {
      out += c;
      if (c === '\\') {
        out += next ?? '';
        i += 2;
        continue;
      }
      if (c === quote) quote = undefined;
      i++;
    } else if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      if (c === '"' || c === "'" || c === '`') quote = c;
      out += c;
      i++;
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('source', () => {
  it('reads no tensor synchronously outside the wasm-only kernels (comments aside)', () => {
    const found: string[] = [];
    for (const file of sourceFiles(join(ROOT, 'src'))) {
      const path = relative(ROOT, file).split('\\').join('/');
      if (WASM_ONLY.some((prefix) => path.startsWith(prefix))) continue;
      const lines = withoutComments(readFileSync(file, 'utf8')).split('\n');
      lines.forEach((line, k) => {
        for (const m of line.matchAll(SYNC_READ)) found.push(`${path}:${k + 1}: ${m[0]}`);
      });
    }
    assert.deepEqual(found, []);
  });

  it('the comment stripper keeps code and strings, drops comments', () => {
    const code = "const a = 'x // y'; // t.dataSync()\n/* t.arraySync() */ t.data();";
    assert.equal(withoutComments(code).match(SYNC_READ), null);
    assert.match(withoutComments(code), /'x \/\/ y'/);
    assert.deepEqual(withoutComments('t.dataSync(); // ok').match(SYNC_READ), ['.dataSync(']);
  });
});

const dir = tempDir('medvae-no-sync-');
const data = join(dir, 'tiny.npz');
// 8 training images at batch 4, micro-batch 2: one epoch of 2 steps, each of 2 micro-batches.
// 12x12 images (restoration scores SSIM on 11x11 windows): what is checked is which reads happen.
const SIZE = 12;
writeTinyNpz(data, { train: 8, val: 6, test: 6, size: SIZE });

function tinyRun(name: ModelName, extra: string[] = []): ReturnType<typeof loadConfig> {
  return loadConfig({
    file: 'configs/smoke.yaml',
    sets: [
      `model.name=${name}`,
      `model.image_size=${SIZE}`,
      'model.hidden_dims=[4, 8]',
      'model.latent_dim=2',
      'model.feature_layer=1',
      `data.path=${data}`,
      'train.batch_size=4',
      'train.micro_batch=2',
      'train.epochs=1',
      'train.backend=cpu',
      'output.sample_grid=4',
      ...extra,
    ],
  });
}

describe('on cpu with every synchronous read throwing', () => {
  const trap = new SyncReadTrap();
  before(async () => {
    await initBackend('cpu');
    trap.install();
  });
  after(() => trap.restore());

  it('the trap catches a synchronous read however it is reached', () => {
    const t = tf.tensor1d([1, 2]);
    const aliased = t.dataSync;
    assert.throws(() => aliased.call(t), /synchronous read-back \(dataSync\)/);
    assert.throws(() => t.arraySync(), /synchronous read-back/);
    assert.throws(() => tf.engine().readSync(t.dataId), /synchronous read-back \(readSync\)/);
    t.dispose();
    trap.attempts.length = 0;
  });

  it('vae: two training steps, the pictures, the checkpoint; then sample, reconstruct, eval and restore from the run', async () => {
    const runDir = join(dir, 'vae');
    await twoSteps(runDir, tinyRun('vae'));
    const run = await loadRun(runDir);
    try {
      for (const latent of ['prior', 'fitted'] as const) {
        const s = await sample(run, { n: 3, seed: 1, latent, batchSize: 2 });
        assert.equal(s.pixels.length, 3 * SIZE * SIZE * 3);
      }
      const images = { data: new Float32Array(2 * SIZE * SIZE * 3).fill(0.25), n: 2, size: SIZE, channels: 3 as const };
      assert.equal((await reconstruct(run, images)).data.length, images.data.length);
      const restored = await restorationMetrics(run.model, run.config, {
        tasks: ['impute', 'denoise', 'score'],
        split: 'test',
        n: 4,
        seed: 1,
        iters: 2,
        samples: 2,
        scoreSamples: 2,
        noises: ['gaussian:0.1'],
        batch: 2,
      });
      assert.ok(Number.isFinite(restored.imputation?.methods['mwg']?.psnr), 'imputation PSNR');
      assert.ok(Number.isFinite(restored.denoising?.[0]?.model.psnr), 'denoising PSNR');
      assert.equal(restored.scores?.n, 4);
    } finally {
      run.model.dispose();
    }
    const evaluated = await evalRun(runDir, {
      split: 'test',
      n: 6,
      seed: 1,
      backend: 'cpu',
      // One step of each classifier and one TSTR seed: more of them make the same reads again.
      recipe: { steps: 1, batchSize: 2, lr: 1e-3 },
      utilitySeeds: 1,
      cacheDir: join(dir, 'feature-nets'),
    });
    assert.ok(Number.isFinite(evaluated.metrics.reconstruction.psnr), 'eval PSNR');
    assert.deepEqual(trap.attempts, []);
  });

  it('vae_gan with gan_margin > 0: two training steps with the gates on the device, the pictures, the checkpoint, a sample', async () => {
    const runDir = join(dir, 'vae_gan');
    assertGates(await twoSteps(runDir, tinyRun('vae_gan', ['model.gan_margin=0.35'])));
    const run = await loadRun(runDir);
    try {
      const s = await sample(run, { n: 2, seed: 1 });
      assert.equal(s.pixels.length, 2 * SIZE * SIZE * 3);
    } finally {
      run.model.dispose();
    }
    assert.deepEqual(trap.attempts, []);
  });
});

describe('VAE-GAN gates on the device', () => {
  before(async () => {
    await initBackend('cpu');
  });

  /** The terms of one forward pass of a fresh (same-seed) model with these game settings. */
  async function terms(equilibrium: number, margin: number): Promise<Record<string, number>> {
    const model = createModel(
      tinyConfig('vae_gan', { image_size: SIZE, hidden_dims: [4, 8], latent_dim: 2, gan_equilibrium: equilibrium, gan_margin: margin }),
      5,
    );
    // Two images: the gates read the losses on real and fake images, and the cpu backend's filter
    // gradient costs about its batch.
    const batch = fixedBatch(2, SIZE, 3);
    const grads = computeGradients(model, batch, context(2));
    const names = Object.keys(grads.terms);
    const stacked = tf.stack(names.map((n) => grads.terms[n]!));
    const values = await stacked.data();
    tf.dispose([stacked]);
    disposeGradients(grads);
    disposeBatch(batch);
    model.dispose();
    return Object.fromEntries(names.map((n, k) => [n, values[k]!]));
  }

  /** The rule as the host applied it before the gates moved to the device. */
  function hostGates(real: number, fake: number, equilibrium: number, margin: number): [number, number] {
    if (margin <= 0) return [1, 1];
    const losses = [real, fake];
    const discriminator = losses.some((l) => l < equilibrium - margin) ? 0 : 1;
    const decoder = losses.some((l) => l > equilibrium + margin) ? 0 : 1;
    return discriminator + decoder === 0 ? [1, 1] : [discriminator, decoder];
  }

  it('train_discriminator and train_adversarial follow the host rule, including "both would stop: both train"', async () => {
    const free = await terms(0.69, 0);
    const [real, fake] = [free['gan_real']!, free['gan_fake']!];
    assert.notEqual(real, fake);
    const [low, high] = [Math.min(real, fake), Math.max(real, fake)];
    const margin = Math.min(0.05, (high - low) / 4);
    // A power of two: low + 0.25 - 0.25 is low again, exactly.
    const edge = 0.25;
    const cases: [number, number][] = [
      [low - 1, margin], // both above equilibrium + margin: the discriminator is behind
      [high + 1, margin], // both below equilibrium - margin: it is ahead
      [(low + high) / 2, margin], // one below, one above: both would stop, so both train
      [(low + high) / 2, high - low], // within the margin: both train
      [low + edge, edge], // a loss exactly at equilibrium - margin is not below it
      [high - edge, edge], // nor one exactly at equilibrium + margin above it
      // Thresholds a millionth of a float32 step past a loss: rounded to float32 they would be the
      // loss itself, and a plain float32 comparison would say "not below" / "not above".
      [low + edge + 1e-13, edge],
      [high - edge - 1e-13, edge],
      [0.69, 0], // no margin: both always train
    ];
    const seen = new Set<string>();
    for (const [equilibrium, m] of cases) {
      const t = await terms(equilibrium, m);
      const want = hostGates(t['gan_real']!, t['gan_fake']!, equilibrium, m);
      assert.deepEqual([t['train_discriminator'], t['train_adversarial']], want, `equilibrium ${equilibrium}, margin ${m}`);
      seen.add(want.join(','));
    }
    assert.deepEqual([...seen].sort(), ['0,1', '1,0', '1,1']);
  });
});
