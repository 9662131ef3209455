// The weights of a run's newest checkpoint, by name, and the largest difference between two such sets:
// how the invariance tests compare a data-parallel run with one worker accumulating micro-batches.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { latestCheckpoint } from '../../src/run/checkpoint.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createModel } from '../../src/models/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** Every weight of a run's checkpoint (by default its newest; BatchNorm moving statistics included), by name. */
export function checkpointWeights(
  runDir: string,
  sets: string[],
  ckpt = latestCheckpoint(join(runDir, 'checkpoints'))!,
): Map<string, Float32Array> {
  const cfg = loadConfig({ file: join(ROOT, 'configs/smoke.yaml'), sets });
  const model = createModel(cfg.model, cfg.train.seed, 5);
  const out = new Map<string, Float32Array>();
  for (const [name, net] of Object.entries(model.networks)) {
    const json = JSON.parse(readFileSync(join(ckpt, name, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    const bytes = readFileSync(join(ckpt, name, 'weights.bin'));
    const values = tf.io.decodeWeights(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      json.weightsManifest[0]!.weights,
    );
    for (const w of net.weights) out.set(w.originalName, values[w.originalName]!.dataSync() as Float32Array);
    tf.dispose(values);
  }
  model.dispose();
  return out;
}

export function maxAbsDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let max = 0;
  for (const [k, va] of a) {
    const vb = b.get(k)!;
    for (let i = 0; i < va.length; i++) max = Math.max(max, Math.abs(va[i]! - vb[i]!));
  }
  return max;
}

const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Hashes of every file of a checkpoint that holds numbers (weights and optimizer moments): how a resume is checked bit for bit. */
export function checkpointDigests(ckpt: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const net of ['encoder', 'decoder']) out[`${net}/weights.bin`] = digest(join(ckpt, net, 'weights.bin'));
  for (const f of readdirSync(ckpt).filter((f) => f.endsWith('.bin'))) out[f] = digest(join(ckpt, f));
  return out;
}
