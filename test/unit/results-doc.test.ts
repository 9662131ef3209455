// docs/results.md's tables and checks (bench/results-page.ts) from bench/results-table.ts's rows
// (bench/results-rows.ts), fed synthetic eval.json files (format 4) written and read back as
// `medvae eval` leaves them: every cell and every yes/no against numbers computed by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EVAL_FILE_VERSION, readEvalFile, writeEvalFile, type EvalFile } from '../../src/eval/eval-file.ts';
import type { EvalMetrics, PosteriorSampleNumbers } from '../../src/eval/evaluate.ts';
import type { SamplePrivacy } from '../../src/eval/privacy.ts';
import type { TstrMetrics, UtilitySpread } from '../../src/eval/utility.ts';
import { resultRow, type ResultRow, type Sampler } from '../../bench/results-rows.ts';
import { checks, mainTable, privacyTable, sampleTable, utilityTable } from '../../bench/results-page.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// Real vs real, shared by every run (the same held-out and reference images).
const REF = { frechet: 0.2, kernel: 0.003, precision: 0.9, recall: 0.92, msSsimReal: 0.35 };

interface Draws {
  frechet: number;
  kernel: number;
  precision: number;
  recall: number;
  diversity: number;
}

function sampleNumbers(d: Draws): Pick<EvalMetrics, 'sample_quality' | 'diversity'> {
  const kernel = (mean: number) => ({ mean, std_error: 0.001, subsets: 10, subset_size: 100 });
  return {
    sample_quality: {
      n_real: 400,
      n_generated: 400,
      feature_net: {
        id: 'featnet-v1-test',
        version: 1,
        seed: 0,
        task: 'class',
        dim: 64,
        recipe: { steps: 300, batchSize: 64, lr: 0.002 },
        n_train: 1080,
        heldout_accuracy: 0.5,
      },
      frechet_distance: d.frechet,
      reference_frechet_distance: REF.frechet,
      kernel_distance: kernel(d.kernel),
      reference_kernel_distance: kernel(REF.kernel),
      precision_recall: { k: 3, precision: d.precision, recall: d.recall },
      reference_precision_recall: { k: 3, precision: REF.precision, recall: REF.recall },
    },
    diversity: { pairs: 100, ms_ssim_generated: d.diversity, ms_ssim_real: REF.msSsimReal },
  };
}

function privacy(grid: string, p1: [number, number], p5: [number, number], closer: [number, number]): SamplePrivacy {
  const distances = (share_below_heldout_p1: number, share_below_heldout_p5: number) => ({
    sample_median: 0.2,
    heldout_median: 0.2,
    sample_min: 0.07,
    heldout_p1: 0.08,
    heldout_p5: 0.1,
    heldout_p99: 0.9,
    share_below_heldout_p1,
    share_below_heldout_p5,
    share_above_heldout_p99: 0.01,
  });
  return {
    n_samples: 400,
    n_heldout: 400,
    n_train: 1080,
    feature: distances(p1[0], p5[0]),
    pixel: distances(p1[1], p5[1]),
    share_closer_to_train: { feature: closer[0], pixel: closer[1] },
    closest_pairs: [],
    grid,
  };
}

/** Spreads and intervals over 5 seeds; only mean, std and the interval are read. */
function utilitySpread(
  tstr: [number, number],
  trtr: [number, number],
  realOnly: [number, number],
  plus: [number, number],
  tstrMinusTrtr: [number, number, number],
  gain: [number, number, number],
): UtilitySpread {
  const s = ([mean, std]: [number, number]) => ({ mean, std, values: [mean, mean, mean, mean, mean] });
  const i = ([mean, low, high]: [number, number, number]) => ({ mean, low, high, level: 0.95 });
  return {
    tstr: s(tstr),
    trtr: s(trtr),
    real_only: s(realOnly),
    real_plus_synthetic: s(plus),
    tstr_minus_trtr: i(tstrMinusTrtr),
    synthetic_gain: i(gain),
  };
}

const cvaeUtility: TstrMetrics = {
  label_kind: 'class',
  n_train: 400,
  n_test: 400,
  tstr: { accuracy: 0.45, auc: 0.63 },
  trtr: { accuracy: 0.52, auc: 0.69 },
  majority_accuracy: 0.435,
  conditioning: { accuracy: 0.4, auc: 0.61 },
  augmentation: {
    n_real: 1080,
    n_synthetic: 400,
    real_only: { accuracy: 0.51, auc: 0.7 },
    real_plus_synthetic: { accuracy: 0.53, auc: 0.71 },
  },
  over_seeds: {
    seeds: [0, 1, 2, 3, 4],
    accuracy: utilitySpread([0.46, 0.012], [0.53, 0.01], [0.515, 0.008], [0.532, 0.009], [-0.07, -0.09, -0.05], [0.017, 0.004, 0.03]),
    auc: utilitySpread([0.64, 0.02], [0.7, 0.01], [0.71, 0.01], [0.72, 0.012], [-0.06, -0.08, -0.04], [0.01, -0.005, 0.025]),
  },
};

interface Run {
  model: string;
  psnr: number;
  draws: Record<Sampler, Draws>;
  privacy: Record<Sampler, SamplePrivacy | null>;
  membership: [number, number] | null;
  tstr: TstrMetrics | null;
  /** The draws' Fréchet distances to the validation images, which choose the default; null: the data had none, the test images chose. */
  validation: Record<Sampler, number> | null;
}

function evalFile(run: Run): EvalFile {
  const scores = (psnr: number, ssim: number, ms_ssim: number) => ({ mse: 0.01, psnr, ssim, ms_ssim });
  const posterior = (s: Sampler): PosteriorSampleNumbers => ({
    n_fit: 1024,
    ...sampleNumbers(run.draws[s]),
    tstr: run.tstr,
    privacy: run.privacy[s],
  });
  const frechet = { prior: run.draws.prior.frechet, gaussian: run.draws.gaussian.frechet, mixture: run.draws.mixture.frechet };
  const chosenBy = run.validation ?? frechet;
  const best = (Object.keys(chosenBy) as Sampler[]).reduce((a, b) => (chosenBy[b] < chosenBy[a] ? b : a));
  return {
    format: 'medvae-eval',
    version: EVAL_FILE_VERSION,
    run: run.model,
    split: 'test',
    n: 400,
    seed: 0,
    heldout_indices: [],
    model: { name: run.model, image_size: 64, channels: 3, param_count: 1, step: 800, temperature: null },
    metrics: {
      reconstruction: {
        n: 400,
        ...scores(run.psnr, 0.75, 0.77),
        nelbo: -9600,
        recon_nll: -9615,
        kl: 15,
        decoder_sigma: 0.11,
        baselines: { constant_grey: scores(9.5, 0.015, 0.035), train_mean: scores(18.8, 0.53, 0.55) },
      } as EvalMetrics['reconstruction'],
      ...sampleNumbers(run.draws.prior),
      tstr: run.tstr,
      privacy: run.privacy.prior,
      membership: run.membership && {
        n_train: 400,
        n_heldout: 400,
        decoder_sigma: 0.11,
        chance_halfwidth_95: 0.04003,
        neg_elbo: { auroc: run.membership[0], train_mean: 0, heldout_mean: 0 },
        recon_mse: { auroc: run.membership[1], train_mean: 0, heldout_mean: 0 },
      },
      fitted_posterior: posterior('gaussian'),
      mixture_posterior: { ...posterior('mixture'), components: 8 },
      sampler: {
        default: best,
        chosen_on: run.validation ? 'val' : 'test',
        fallback: run.validation ? null : "no validation split 'val'",
        n_chosen_on: run.validation ? 200 : 400,
        frechet_chosen_on: chosenBy,
        frechet,
      },
    },
    meta: {
      created_at: '2026-01-01T00:00:00Z',
      seconds: 1,
      backend: 'cpu',
      machine: { os: 'test', cpus: 2, cpu_model: 'test', memory_gb: 1, node: 'v20' },
    },
  };
}

const draws = (frechet: number, kernel: number, precision: number, recall: number, diversity: number): Draws => ({
  frechet,
  kernel,
  precision,
  recall,
  diversity,
});

const runs: Run[] = [
  {
    // Default: the Gaussian, the lowest on the validation images (0.7 < 1.5 < 6), though on the test
    // images the mixture is (0.9 < 2.2 < 7). Precision 0.81 >= 0.8 * 0.9 = 0.72; Fréchet 2.2 > 5 * 0.2 = 1.
    model: 'vae',
    psnr: 26,
    draws: {
      prior: draws(7, 0.26, 0.6, 0.07, 0.43),
      gaussian: draws(2.2, 0.07, 0.81, 0.09, 0.45),
      mixture: draws(0.9, 0.05, 0.75, 0.2, 0.43),
    },
    privacy: {
      prior: privacy('eval-closest-pairs-prior.png', [0.0025, 0], [0.02, 0], [0.7375, 0.65]),
      gaussian: privacy('eval-closest-pairs-fitted.png', [0.005, 0], [0.0175, 0.0075], [0.6775, 0.5725]),
      mixture: privacy('eval-closest-pairs-mixture.png', [0.005, 0], [0.0225, 0.005], [0.645, 0.55]),
    },
    membership: [0.5208, 0.529],
    tstr: null,
    validation: { prior: 6, gaussian: 0.7, mixture: 1.5 },
  },
  {
    // Default: the Gaussian (validation 0.75; test 0.8). Precision 0.7 < 0.72: no; Fréchet 0.8 <= 1: yes; below the VAE's 2.2: yes.
    // Prior precision 0.4 < 0.5 * 0.9 = 0.45: no. Sample-pair MS-SSIM: prior |0.34 - 0.35| <= 0.1, Gaussian |0.5 - 0.35| > 0.1.
    model: 'vae_gan',
    psnr: 27.5,
    draws: {
      prior: draws(30, 8.4, 0.4, 0.3, 0.34),
      gaussian: draws(0.8, 0.002, 0.7, 0.5, 0.5),
      mixture: draws(1.1, 0.004, 0.72, 0.45, 0.4),
    },
    privacy: {
      prior: privacy('eval-closest-pairs-prior.png', [0.01, 0.02], [0.06, 0.07], [0.5, 0.51]),
      gaussian: privacy('eval-closest-pairs-fitted.png', [0.0125, 0.0025], [0.055, 0.03], [0.52, 0.49]),
      mixture: null,
    },
    membership: [0.55, 0.49],
    tstr: null,
    validation: { prior: 25, gaussian: 0.75, mixture: 1 },
  },
  {
    // No validation split: the test images chose the prior (0.95), and the main table says so. PSNR 19.3 < 18.8 + 1: no. Precision 0.8 >= 0.72, Fréchet 0.95 <= 1: yes.
    // TSTR 0.46 < 0.9 * 0.53 = 0.477: no; AUC 0.64 >= 0.6: yes. Gain [0.004, 0.03] above 0: yes, below: no.
    model: 'cvae',
    psnr: 19.3,
    draws: {
      prior: draws(0.95, 0.01, 0.8, 0.6, 0.36),
      gaussian: draws(1.2, 0.02, 0.85, 0.5, 0.4),
      mixture: draws(1.3, 0.03, 0.86, 0.4, 0.41),
    },
    privacy: { prior: null, gaussian: null, mixture: null },
    membership: null,
    tstr: cvaeUtility,
    validation: null,
  },
];

function rowsFromFiles(): ResultRow[] {
  const root = tempDir('medvae-results-doc-');
  return runs.map((run) => {
    const dir = join(root, run.model);
    mkdirSync(dir);
    writeEvalFile(dir, evalFile(run));
    const evaluation = readEvalFile(dir);
    assert.ok(evaluation);
    return resultRow({ run: dir, model: run.model, image_size: 64, epochs: 50, grid_sampler: 'mixture' }, evaluation);
  });
}

const rows = rowsFromFiles();
/** The table's body rows as lists of cells, by their first cell (model and sampler where two share a model). */
const cells = (table: string[]): string[][] =>
  table.slice(2).map((line) =>
    line
      .slice(2, -2)
      .split(' | ')
      .map((c) => c.trim()),
  );

test('rows: default sampler numbers, per-sampler privacy and the keys other readers use', () => {
  const [vae, gan, cvae] = rows;
  // The sampler eval.json chose on the validation images, not the lowest on the test images (the mixture's 0.9).
  assert.equal(vae!.default_sampler, 'gaussian');
  assert.equal(gan!.default_sampler, 'gaussian');
  assert.equal(cvae!.default_sampler, 'prior');
  assert.deepEqual(
    rows.map((r) => r.default_sampler_chosen_on),
    ['val', 'val', 'test'],
  );
  // Its numbers on the test images.
  assert.deepEqual(
    [vae!.default_frechet_feature_distance, vae!.default_precision, vae!.default_recall, vae!.mixture_components],
    [2.2, 0.81, 0.09, 8],
  );
  // Format-2 keys keep their meaning: prior draws, fitted_* the Gaussian's.
  assert.deepEqual(
    [vae!.frechet_feature_distance, vae!.precision, vae!.fitted_frechet_feature_distance, vae!.fitted_precision],
    [7, 0.6, 2.2, 0.81],
  );
  assert.deepEqual([vae!.frechet_reference, vae!.precision_reference, vae!.recall_reference], [0.2, 0.9, 0.92]);
  assert.equal(vae!.privacy.mixture!.grid, join(vae!.run, 'eval-closest-pairs-mixture.png'));
  assert.equal(gan!.privacy.mixture, null);
  assert.deepEqual(vae!.membership, {
    n_train: 400,
    n_heldout: 400,
    neg_elbo_auroc: 0.5208,
    recon_mse_auroc: 0.529,
    chance_halfwidth_95: 0.04003,
  });
  assert.equal(cvae!.utility.prior!.seeds, 5);
  assert.deepEqual(cvae!.utility.prior!.accuracy.synthetic_gain, { mean: 0.017, low: 0.004, high: 0.03, level: 0.95 });
  assert.deepEqual([cvae!.tstr_accuracy, cvae!.trtr_accuracy, cvae!.real_plus_synthetic_accuracy], [0.45, 0.52, 0.53]);
});

test('main table: reconstruction and the default sampler, then the baselines', () => {
  assert.deepEqual(cells(mainTable(rows)), [
    ['vae', '50 (800)', '26', '0.75', '0.77', '-9600', 'gaussian', '2.2', '0.07', '0.81', '0.09', '0.45'],
    ['vae_gan', '50 (800)', '27.5', '0.75', '0.77', '-9600', 'gaussian', '0.8', '0.002', '0.7', '0.5', '0.5'],
    ['cvae', '50 (800)', '19.3', '0.75', '0.77', '-9600', 'prior (chosen on test)', '0.95', '0.01', '0.8', '0.6', '0.36'],
    ['*constant grey image*', '', '9.5', '', '', '', '', '', '', '', '', ''],
    ['*training-mean image*', '', '18.8', '0.53', '0.55', '', '', '', '', '', '', ''],
    ['*real vs real*', '', '', '', '', '', '', '0.2', '0.003', '0.9', '0.92', '0.35'],
  ]);
});

test('sample-quality table: the prior, then the default sampler where it is another', () => {
  assert.deepEqual(cells(sampleTable(rows)), [
    ['vae', 'prior', '7', '0.26', '0.6', '0.07', '0.43'],
    ['vae', 'gaussian (default)', '2.2', '0.07', '0.81', '0.09', '0.45'],
    ['vae_gan', 'prior', '30', '8.4', '0.4', '0.3', '0.34'],
    ['vae_gan', 'gaussian (default)', '0.8', '0.002', '0.7', '0.5', '0.5'],
    ['cvae', 'prior (default)', '0.95', '0.01', '0.8', '0.6', '0.36'],
    ['*real vs real*', '', '0.2', '0.003', '0.9', '0.92', '0.35'],
  ]);
});

test("privacy table: the default sampler's draws, and membership; — where eval.json has none", () => {
  assert.deepEqual(cells(privacyTable(rows)), [
    ['vae', 'gaussian', '0.005 / 0', '0.0175 / 0.0075', '0.6775 / 0.5725', '0.5208', '0.529', '0.5 ± 0.04'],
    ['vae_gan', 'gaussian', '0.0125 / 0.0025', '0.055 / 0.03', '0.52 / 0.49', '0.55', '0.49', '0.5 ± 0.04'],
    ['cvae', 'prior', '—', '—', '—', '—', '—', '—'],
    ['*no copying, no membership signal*', '', '0.01 / 0.01', '0.05 / 0.05', '0.5 / 0.5', '0.5', '0.5', ''],
  ]);
});

test('utility table: mean ± std over seeds and the paired 95% intervals, conditional models only', () => {
  assert.deepEqual(cells(utilityTable(rows)), [
    [
      'cvae',
      'prior (default)',
      'accuracy',
      '0.46 ± 0.012',
      '0.53 ± 0.01',
      '-0.07 [-0.09, -0.05]',
      '0.515 ± 0.008',
      '0.532 ± 0.009',
      '0.017 [0.004, 0.03]',
    ],
    [
      'cvae',
      'prior (default)',
      'AUC',
      '0.64 ± 0.02',
      '0.7 ± 0.01',
      '-0.06 [-0.08, -0.04]',
      '0.71 ± 0.01',
      '0.72 ± 0.012',
      '0.01 [-0.005, 0.025]',
    ],
    ['*majority class*', '', 'accuracy', '0.435', '0.435', '', '0.435', '0.435', ''],
    ['*chance*', '', 'AUC', '0.5', '0.5', '', '0.5', '0.5', ''],
  ]);
  assert.deepEqual(utilityTable(rows.slice(0, 2)), []);
});

test("checks: the issue's must-shows as yes / no from the numbers", () => {
  const lines = checks(rows);
  const answers = (start: string): string[] => {
    const line = lines.find((l) => l.startsWith(`- ${start}`));
    assert.ok(line, `no check line starts with '${start}':\n${lines.join('\n')}`);
    return [...line.matchAll(/: (\*\*no\*\*|\*\*yes\*\*|yes|no)(?=;|$)/g)].map((m) => m[1]!);
  };
  assert.deepEqual(answers('vae: PSNR'), ['yes']);
  assert.deepEqual(answers('cvae: PSNR'), ['**no**']);
  assert.deepEqual(answers('vae, default sampler (gaussian): precision'), ['yes', '**no**']);
  assert.deepEqual(answers('vae_gan, default sampler (gaussian): precision'), ['**no**', 'yes']);
  assert.deepEqual(answers('cvae, default sampler (prior): precision'), ['yes', 'yes']);
  assert.deepEqual(answers('vae_gan, prior: precision'), ['**no**']);
  assert.deepEqual(answers('vae_gan, default sampler (gaussian): Fréchet'), ['yes']);
  assert.deepEqual(answers('vae_gan, prior: sample-pair'), ['yes']);
  assert.deepEqual(answers('vae_gan, gaussian (default): sample-pair'), ['**no**']);
  assert.deepEqual(answers('cvae, prior (default): TSTR'), ['**no**', 'yes']);
  assert.deepEqual(answers('cvae, prior (default): real + synthetic'), ['yes', 'no']);
  assert.ok(
    lines.includes(
      "- vae, default sampler (gaussian): precision 0.81 ≥ 0.8 × real vs real's 0.9 = 0.72: yes; Fréchet feature distance 2.2 ≤ 5 × real vs real's 0.2 = 1: **no**",
    ),
  );
  assert.ok(
    lines.includes(
      '- cvae, prior (default): real + synthetic accuracy 0.532 ± 0.009 vs real alone 0.515 ± 0.008, difference 0.017 [0.004, 0.03] (95% interval over 5 seeds): above real alone (interval above 0): yes; below it (interval below 0): no',
    ),
  );
  // Without the VAE-GAN or the CVAE their checks are named, not silently dropped.
  const partial = checks(rows.slice(0, 1));
  assert.ok(partial.some((l) => l.startsWith('- vae_gan: not in these results')));
  assert.ok(partial.some((l) => l.startsWith('- cvae: not in these results')));
});
