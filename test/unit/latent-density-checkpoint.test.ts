// The latent density a checkpoint carries: fitted by the trainer at each checkpoint, covered by the
// manifest, loaded by loadRun, and the sampler `sample` chooses by default (with the line saying
// which): eval's sampler.json for that step, else the density's preference, else the prior.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { train } from '../../src/train/trainer.ts';
import type { Progress } from '../../src/run/progress.ts';
import { loadRun } from '../../src/run/checkpoint.ts';
import { verifyCheckpoint } from '../../src/run/checkpoint-manifest.ts';
import { LATENT_DENSITY_FILE } from '../../src/models/latent-density.ts';
import { writeSamplerChoice } from '../../src/run/sampler-choice.ts';
import { sample } from '../../src/generate/sample.ts';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('medvae-latent-density-');
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 32, val: 16, test: 8, size: 16, classes: 3 });
const quiet: Progress = { info: () => {}, step: () => {}, done: () => {} };

test('each checkpoint carries a latent density; sample says which sampler it uses and why', async () => {
  const runDir = join(dir, 'cvae');
  const config = loadConfig({
    file: 'configs/smoke.yaml',
    sets: [
      'model.name=cvae',
      `data.path=${data}`,
      'model.image_size=16',
      'train.batch_size=8',
      'train.max_steps=3',
      'train.backend=wasm',
      'output.sample_grid=4',
    ],
  });
  const result = await train({ config, runDir, progress: quiet });
  const checkpoint = result.checkpoint;
  const manifest = JSON.parse(readFileSync(join(checkpoint, 'manifest.json'), 'utf8')) as { files: Record<string, unknown> };
  assert.ok(manifest.files[LATENT_DENSITY_FILE], 'the manifest lists the density');
  verifyCheckpoint(checkpoint);
  for (const grid of ['epoch-0001.png', 'epoch-0001-prior.png']) assert.ok(existsSync(join(runDir, 'samples', grid)), grid);

  const run = await loadRun(runDir);
  try {
    const density = run.latentDensity;
    assert.ok(density);
    assert.equal(density.step, 3);
    assert.equal(density.dim, 8);
    assert.equal(density.fitImages, 32);
    assert.equal(density.validationImages, 16);
    assert.equal(density.gaussian.perClass.length, 3);
    assert.ok(density.gaussian.perClass.every((fit) => fit !== null));

    const lines: string[] = [];
    const log = (line: string): void => void lines.push(line);
    const drawn = await sample(run, { n: 6, log });
    assert.equal(drawn.sampler, density.preferred);
    assert.match(lines.join('\n'), new RegExp(`^sampler: ${density.preferred} \\(highest held-out latent log-likelihood`, 'm'));

    writeSamplerChoice(runDir, {
      format: 'medvae-sampler',
      version: 1,
      step: 3,
      sampler: 'mixture',
      split: 'val',
      frechet: { prior: 9, gaussian: 2, mixture: 1 },
    });
    lines.length = 0;
    assert.equal((await sample(run, { n: 2, log })).sampler, 'mixture');
    assert.match(lines[0]!, /^sampler: mixture \(lowest Fréchet feature distance to the val images/);
    assert.equal((await sample(run, { n: 2, latent: 'fitted', log })).sampler, 'gaussian');
  } finally {
    run.model.dispose();
  }

  // A checkpoint from before densities: the prior by default, one line saying why.
  rmSync(join(runDir, 'sampler.json'));
  rmSync(join(checkpoint, LATENT_DENSITY_FILE));
  rmSync(join(checkpoint, 'manifest.json'));
  const old = await loadRun(checkpoint);
  try {
    assert.equal(old.latentDensity, undefined);
    const lines: string[] = [];
    assert.equal((await sample(old, { n: 2, log: (line) => void lines.push(line) })).sampler, 'prior');
    assert.match(lines[0]!, /^sampler: prior \(the checkpoint has no latent density/);
  } finally {
    old.model.dispose();
  }
});
