// The denoising numbers of docs/restoration.md at the data's native resolution: for each --run, on
// all --n test images, the model's denoising (its decoder's mean, and that mean combined with the
// noisy input by their variances) against a blur and a median filter tuned on the validation split,
// at each --noise, with the model's reconstruction of the clean images (its ceiling). Prints one
// JSON line per run and noise (the first: commit, date, machine, backend) and writes grids.
//
// Usage: node --import tsx bench/denoise.ts --run runs/denoise/vae32-denoising [--run ...]
//          [--noise gaussian:0.05 --noise gaussian:0.1 --noise gaussian:0.2] [--n 400] [--out runs/denoise]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { emit, log, runFields, startBench } from './restore-lines.ts';
import { loadRun } from '../src/run/checkpoint.ts';
import { restorationMetrics } from '../src/restore/restore-eval.ts';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string', multiple: true, default: [] },
    noise: { type: 'string', multiple: true, default: ['gaussian:0.05', 'gaussian:0.1', 'gaussian:0.2'] },
    n: { type: 'string', default: '400' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/denoise' },
  },
});
if (a.run.length === 0) throw new Error('bench/denoise.ts: give at least one --run');

await startBench(a.out);

for (const dir of a.run) {
  const started = Date.now();
  const { config, state, model } = await loadRun(dir);
  const gridDir = join(a.out, 'grids', dir.replace(/[^a-z0-9.]+/gi, '-'));
  mkdirSync(gridDir, { recursive: true });
  const r = await restorationMetrics(model, config, {
    tasks: ['denoise'],
    split: 'test',
    n: Number(a.n),
    seed: Number(a.seed),
    noises: a.noise,
    gridDir,
    log,
  });
  model.dispose();
  const info = {
    ...runFields(dir, config, state),
    model_name: config.model.name,
    kld_weight: config.model.kld_weight,
    batch_size: config.train.batch_size,
    corrupt: config.train.corrupt,
  };
  for (const d of r.denoising ?? []) emit({ kind: 'denoising', ...info, ...d });
  emit({ kind: 'grids', run: dir, dir: gridDir, grids: r.grids, seconds: (Date.now() - started) / 1000 });
}
