// The webgpu backend end to end through the command line, on the software adapter: a run from the
// README's command, its loss falling, a bit-exact resume, a checkpoint moving to native,
// and medvae-dist's two GPU workers equal to one worker accumulating the same micro-batches.
// Skips, saying why, where webgpu cannot start. Every webgpu command is a process of its own (each
// starts the adapter and compiles its shaders, as a user's does: seconds of CPU each); the native
// commands, about the checkpoint rather than the process, run in this one.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { latestCheckpoint, readState } from '../../src/run/checkpoint.ts';
import { NpzArchive } from '../../src/data/npz.ts';
import { tf } from '../../src/util/tf.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { checkpointDigests, checkpointWeights, maxAbsDiff } from '../helpers/checkpoint-weights.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { medvaeInProcess } from '../helpers/medvae-cli.ts';
import { webgpuUnavailable } from '../helpers/webgpu.ts';
import { nativeUnavailable } from '../helpers/native.ts';

const skip = await webgpuUnavailable();
const ROOT = join(import.meta.dirname, '..', '..');
const TRAIN = join(ROOT, 'bin', 'medvae.js');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const dir = tempDir('medvae-webgpu-cli-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 16, val: 8, test: 8, size: 16 });
const gpu = ['--backend', 'webgpu', '--allow-software-gpu'];
// 16x16 images and a 4-image grid: on the software adapter every step costs seconds.
const base = [
  '--config',
  'configs/smoke.yaml',
  '--data',
  data,
  '--log-format',
  'json',
  '--set',
  'model.image_size=16',
  '--set',
  'output.sample_grid=4',
];

function run(bin: string, args: string[]): { status: number | null; stderr: string; stdout: string } {
  // No driver variable set by hand: the project finds SwiftShader itself.
  const env = { ...process.env };
  delete env.VK_ICD_FILENAMES;
  delete env.VK_DRIVER_FILES;
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, env });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** The images `medvae sample` (train_images) or `reconstruct` (<split>_images) wrote to an npz. */
async function npzPixels(file: string, name = 'train_images'): Promise<Uint8Array> {
  const archive = await NpzArchive.open(file);
  try {
    const array = await archive.openArray(name);
    return await array.readRows(0, array.shape[0]!);
  } finally {
    await archive.close();
  }
}

/** Mean loss of the steps of each epoch, from metrics.jsonl. */
function epochLosses(runDir: string): number[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; means?: { loss: number } })
    .filter((r) => r.kind === 'epoch')
    .map((r) => r.means!.loss);
}

describe('webgpu through the CLI (software adapter)', { skip }, () => {
  // Steps of 8 images as 2 accumulated micro-batches of 4: the single-process runs are also the
  // reference that medvae-dist's two workers of 4 must equal.
  const dist = ['train.batch_size=8', 'train.micro_batch=4'];
  const sets = dist.flatMap((s) => ['--set', s]);
  const straight = join(dir, 'straight');
  const halves = join(dir, 'halves');

  test('train --backend webgpu --allow-software-gpu: the first lines name SwiftShader; over 2 epochs the loss falls', () => {
    const r = run(TRAIN, ['train', ...base, ...gpu, ...sets, '--epochs', '2', '--out', straight]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr.split('\n').slice(0, 3).join('\n'), /backend: webgpu \(gpu\) \(SwiftShader Device/);
    const losses = epochLosses(straight);
    assert.equal(losses.length, 2);
    assert.ok(losses[1]! < losses[0]!, `epoch losses ${losses.join(', ')}`);
    assert.equal(readState(latestCheckpoint(join(straight, 'checkpoints'))!).step, 4);
  });

  test('2 epochs straight equal 1 epoch, stop, resume 1 epoch, bit for bit', () => {
    // The first epoch is the straight run's own: a copy of its directory as a run stopped after
    // its epoch-1 checkpoint leaves it (no later checkpoint, so none can be compared by mistake).
    cpSync(straight, halves, { recursive: true });
    for (const later of ['step-0000004', 'best']) rmSync(join(halves, 'checkpoints', later), { recursive: true });
    const r = run(TRAIN, ['train', '--resume', halves, '--epochs', '2', ...gpu, '--log-format', 'json']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /resumed from .*step-0000002: epoch 2, step 2/);
    const a = latestCheckpoint(join(straight, 'checkpoints'))!;
    const b = latestCheckpoint(join(halves, 'checkpoints'))!;
    assert.ok(a.endsWith('step-0000004') && b.endsWith('step-0000004'), `${a} ${b}`);
    assert.deepEqual(checkpointDigests(b), checkpointDigests(a));
  });

  test(
    'a checkpoint trained on webgpu samples and reconstructs alike on native (within 2 grey levels) and resumes there',
    { skip: nativeUnavailable() },
    async () => {
      const onGpu = join(dir, 'gpu.npz');
      const onCpu = join(dir, 'cpu.npz');
      const s1 = run(TRAIN, ['sample', '--run', straight, ...gpu, '--n', '8', '--seed', '3', '--out', onGpu]);
      assert.equal(s1.status, 0, s1.stderr);
      const s2 = await medvaeInProcess(['sample', '--run', straight, '--backend', 'native', '--n', '8', '--seed', '3', '--out', onCpu]);
      assert.equal(s2.status, 0, s2.stderr);
      // The skip probe left webgpu active in this process: the command moved it to native's TF.js
      // backend (wasm plus the native kernels), so the pictures below are not webgpu's twice.
      assert.equal(tf.getBackend(), 'wasm');
      const largestDifference = (a: Uint8Array, b: Uint8Array): number => {
        assert.equal(a.length, 8 * 16 * 16 * 3);
        let diff = 0;
        for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        return diff;
      };
      const sampled = largestDifference(await npzPixels(onGpu), await npzPixels(onCpu));
      assert.ok(sampled <= 2, `samples: largest pixel difference ${sampled}`);
      // Reconstructions go through the encoder as well.
      const reconstruct = ['reconstruct', '--run', straight, '--split', 'test', '--n', '8', '--out'];
      const r1 = run(TRAIN, [...reconstruct, join(dir, 'r-gpu.npz'), ...gpu]);
      assert.equal(r1.status, 0, r1.stderr);
      const r2 = await medvaeInProcess([...reconstruct, join(dir, 'r-cpu.npz'), '--backend', 'native']);
      assert.equal(r2.status, 0, r2.stderr);
      const reconstructed = largestDifference(
        await npzPixels(join(dir, 'r-gpu.npz'), 'test_images'),
        await npzPixels(join(dir, 'r-cpu.npz'), 'test_images'),
      );
      assert.ok(reconstructed <= 2, `reconstructions: largest pixel difference ${reconstructed}`);
      const r = await medvaeInProcess(['train', '--resume', straight, '--epochs', '3', '--backend', 'native', '--log-format', 'json']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /resumed from .*step-0000004: epoch 3, step 4/);
      assert.equal(readState(latestCheckpoint(join(straight, 'checkpoints'))!).step, 6);
      // Back on webgpu from a checkpoint native wrote is not run again here: checkpoints carry no
      // trace of the backend that wrote them, and webgpu resuming its own is the test above.
    },
  );

  test('medvae-dist --gpus 0,1: two workers on the adapter equal one worker accumulating 2 micro-batches of 4 (max abs diff <= 1e-5)', () => {
    // The reference is the straight run's first epoch (2 steps) in one process: its step-2
    // checkpoint, which keep_last (3) keeps past the native resume's step 6.
    const two = join(dir, 'two');
    const r = run(DIST, ['--gpus', '0,1', ...base, ...gpu, ...sets, '--epochs', '1', '--out', two]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /workers: gpu:0, gpu:1/);
    assert.match(r.stderr, /rank 0: backend: webgpu .*SwiftShader/);
    assert.match(r.stderr, /rank 1: backend: webgpu .*shared by GPU 1/);
    const oneWorker = join(straight, 'checkpoints', 'step-0000002');
    assert.equal(readState(latestCheckpoint(join(two, 'checkpoints'))!).step, 2);
    const diff = maxAbsDiff(checkpointWeights(straight, dist, oneWorker), checkpointWeights(two, dist));
    assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  });
});
