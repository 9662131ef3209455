// Every synchronous read of a tensor made to throw, and a two-step training run checked under it:
// no-sync-readback.test.ts runs it on cpu, webgpu-kernels.test.ts on webgpu (in the process that
// has compiled the model's shaders already).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import type { ExperimentConfig } from '../../src/config/schema.ts';
import type { Progress } from '../../src/run/progress.ts';
import { train, type StepInfo } from '../../src/train/trainer.ts';

const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

/** Makes every synchronous read of a tensor throw until restored; counts the attempts. */
export class SyncReadTrap {
  attempts: string[] = [];
  private readonly saved: [object, string, unknown][] = [];

  install(): void {
    const engine = tf.engine() as unknown as Record<string, unknown>;
    const targets: [object, string][] = [
      [tf.Tensor.prototype, 'dataSync'],
      [tf.Tensor.prototype, 'arraySync'],
      [tf.Tensor.prototype, 'bufferSync'],
      // Under the methods above: what anything reading a tensor synchronously through the engine goes through.
      [engine, 'readSync'],
    ];
    for (const [target, name] of targets) {
      this.saved.push([target, name, (target as Record<string, unknown>)[name]]);
      const attempts = this.attempts;
      (target as Record<string, unknown>)[name] = function syncReadTrap(): never {
        const where = new Error().stack?.split('\n').slice(2, 6).join(' <- ') ?? '';
        attempts.push(`${name}: ${where}`);
        throw new Error(`synchronous read-back (${name}) on a path a GPU run takes: ${where}`);
      };
    }
  }

  restore(): void {
    for (const [target, name, value] of this.saved.reverse()) (target as Record<string, unknown>)[name] = value;
    this.saved.length = 0;
  }
}

/** Trains a run of one epoch of two steps; checks its backend, pictures and checkpoint; returns what each step reported. */
export async function twoSteps(runDir: string, config: ExperimentConfig, progress: Progress = quiet): Promise<StepInfo[]> {
  const steps: StepInfo[] = [];
  const result = await train({ config, runDir, progress, hooks: { onStep: (info) => void steps.push(info) } });
  assert.equal(result.backend.name, config.train.backend);
  assert.equal(result.stoppedBy, 'completed');
  assert.equal(result.state.step, 2);
  assert.ok(existsSync(join(runDir, 'samples', 'epoch-0001.png')), 'sample grid');
  assert.ok(existsSync(join(runDir, 'reconstructions', 'epoch-0001.png')), 'reconstruction grid');
  assert.ok(result.checkpoint !== '' && existsSync(result.checkpoint), `checkpoint ${result.checkpoint}`);
  assert.equal(steps.length, 2);
  for (const info of steps) {
    for (const [name, value] of Object.entries(info.terms)) assert.ok(Number.isFinite(value), `step ${info.step}: ${name} = ${value}`);
  }
  return steps;
}

/** VAE-GAN terms: the gates are 0/1 per micro-batch, so their step means lie in [0, 1]. */
export function assertGates(steps: readonly StepInfo[]): void {
  for (const { terms, step } of steps) {
    for (const gate of ['train_discriminator', 'train_adversarial']) {
      const v = terms[gate];
      assert.ok(v !== undefined && v >= 0 && v <= 1, `step ${step}: ${gate} = ${v}`);
    }
  }
}
