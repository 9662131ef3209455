// The restoration results of docs/restoration.md: on a trained run, imputation of a centred 25%
// square by both chains against mean fill and harmonic inpainting, denoising at several noise
// levels against a blur and a median filter tuned on the validation split, and anomaly scores
// (-ELBO, IWAE, reconstruction error) of an anomaly run with the AUROC of --normal vs the rest.
// Prints one JSON line per result (the first: commit, date, machine, backend) and writes grids.
//
// Usage: node --import tsx bench/restore.ts --run runs/restore/vae [--anomaly-run runs/restore/vae-grade0]
//          [--normal 0] [--n 400] [--iters 20] [--samples 1] [--score-samples 16] [--out runs/restore/bench]
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { emit, log, runFields, startBench } from './restore-lines.ts';
import { loadRun } from '../src/run/checkpoint.ts';
import { anomalyAuroc, checkNormalClasses, parseNormal } from '../src/restore/anomaly.ts';
import { DEFAULT_NOISES, restorationMetrics } from '../src/restore/restore-eval.ts';
import { chunksOf, readImages, selectImages, sigmaImages } from '../src/restore/run-data.ts';
import { SCORE_NAMES, scoreImages, type ImageScoreRows } from '../src/restore/score.ts';
import { fitDecoderSigma } from '../src/restore/sigma.ts';
import { createCounter } from '../src/restore/progress.ts';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string', default: 'runs/restore/vae' },
    'anomaly-run': { type: 'string' },
    normal: { type: 'string', default: '0' },
    n: { type: 'string', default: '400' },
    iters: { type: 'string', default: '20' },
    samples: { type: 'string', default: '1' },
    'score-samples': { type: 'string', default: '16' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/restore/bench' },
  },
});
const seed = Number(a.seed);
mkdirSync(a.out!, { recursive: true });

await startBench(a.out!);

async function runInfo(dir: string): Promise<ReturnType<typeof runFields>> {
  const { config, state, model } = await loadRun(dir);
  model.dispose();
  return runFields(dir, config, state);
}

{
  const started = Date.now();
  const { config, model } = await loadRun(a.run!);
  const info = await runInfo(a.run!);
  const r = await restorationMetrics(model, config, {
    tasks: ['impute', 'denoise'],
    split: 'test',
    n: Number(a.n),
    seed,
    iters: Number(a.iters),
    samples: Number(a.samples),
    noises: DEFAULT_NOISES,
    gridDir: a.out,
    log,
  });
  model.dispose();
  emit({ kind: 'imputation', ...info, ...r.imputation });
  for (const d of r.denoising ?? []) emit({ kind: 'denoising', ...info, ...d });
  emit({ kind: 'grids', run: a.run, grids: r.grids, seconds: (Date.now() - started) / 1000 });
}

/** Scores of every test image of a run, AUROC of the normal classes against the rest. */
async function anomaly(dir: string, normal: number[]): Promise<void> {
  const started = Date.now();
  const { config, model } = await loadRun(dir);
  const { images: val } = await sigmaImages(config, seed);
  const sigma = await fitDecoderSigma(model, val, seed);
  const { split, indices, classes } = await selectImages(config, { split: 'test', seed });
  checkNormalClasses(classes, normal, split.labelNames);
  const all: ImageScoreRows = { neg_elbo: [], neg_iwae: [], recon_mse: [] };
  let first = 0;
  const counter = createCounter(`score ${dir}`, indices.length, log);
  for (const chunk of chunksOf(indices, 256)) {
    const s = await scoreImages(model, await readImages(config, split, chunk), {
      sigma,
      samples: Number(a['score-samples']),
      seed,
      batch: 32,
      firstIndex: first,
      counter,
    });
    for (const k of SCORE_NAMES) all[k].push(...s[k]);
    first += chunk.length;
  }
  counter.done();
  await split.close();
  model.dispose();
  const mean = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
  const byGroup = (k: (typeof SCORE_NAMES)[number], normalGroup: boolean): number =>
    mean(all[k].filter((_, i) => normal.includes(classes[i] ?? -1) === normalGroup));
  emit({
    kind: 'anomaly',
    ...(await runInfo(dir)),
    normal,
    n: indices.length,
    n_normal: classes.filter((c) => normal.includes(c ?? -1)).length,
    samples: Number(a['score-samples']),
    decoder_sigma: sigma,
    auroc: Object.fromEntries(SCORE_NAMES.map((k) => [k, anomalyAuroc(all[k], classes, normal)])),
    mean_normal: Object.fromEntries(SCORE_NAMES.map((k) => [k, byGroup(k, true)])),
    mean_rest: Object.fromEntries(SCORE_NAMES.map((k) => [k, byGroup(k, false)])),
    seconds: (Date.now() - started) / 1000,
  });
}

const normal = parseNormal(a.normal!);
if (a['anomaly-run']) await anomaly(a['anomaly-run'], normal);
await anomaly(a.run!, normal);
