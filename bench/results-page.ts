// The tables and checks of docs/results.md, from bench/results-table.ts's lines (./results-rows.ts).
// Pure: bench/results-doc.ts writes them into the page with the pictures, and a unit test checks
// them against hand-computed numbers. A number a model does not have shows as —.
import {
  SAMPLERS,
  type IntervalNumbers,
  type QualityNumbers,
  type ResultRow,
  type Sampler,
  type SpreadNumbers,
  type UtilityScore,
} from './results-rows.ts';

export const fmt = (v: number | null | undefined, digits = 4): string =>
  v === null || v === undefined ? '—' : String(Number(v.toPrecision(digits)));

/** A Markdown table: header cells, then rows of cells. */
function markdownTable(head: string[], body: string[][]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`, ...body.map((cells) => `| ${cells.join(' | ')} |`)];
}

/** Mean ± standard deviation over the classifier seeds. */
const spread = (s: SpreadNumbers): string => (s.mean === null ? '—' : `${fmt(s.mean, 3)} ± ${fmt(s.std, 3)}`);
/** A paired difference's mean and 95% interval. */
const interval = (i: IntervalNumbers): string => (i.mean === null ? '—' : `${fmt(i.mean, 3)} [${fmt(i.low, 3)}, ${fmt(i.high, 3)}]`);

/** The rows' real-vs-real and baseline numbers: one set when all runs share them (the same held-out images), else one per model. */
function baselineSets(rows: ResultRow[], pick: (r: ResultRow) => (number | null)[]): { label: string; row: ResultRow }[] {
  const distinct = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const key = JSON.stringify(pick(r));
    distinct.set(key, [...(distinct.get(key) ?? []), r]);
  }
  const sets = [...distinct.values()];
  return sets.map((of) => ({ label: sets.length === 1 ? '' : ` (${of.map((r) => r.model).join(', ')})`, row: of[0]! }));
}

/** The default sampler, marked where the evaluated split chose it itself (no validation split): its numbers there favour it. */
const defaultCell = (r: ResultRow): string =>
  r.default_sampler === null
    ? '—'
    : r.default_sampler_chosen_on === r.split
      ? `${r.default_sampler} (chosen on ${r.split})`
      : r.default_sampler;

/** Epochs, and steps of batch (lines written before the batch size was recorded lack it). */
const budget = (r: ResultRow): string => (r.batch_size ? `${r.epochs} (${r.steps} of ${r.batch_size})` : `${r.epochs} (${r.steps})`);

/** Reconstruction, and the default sampler's draws against the held-out images. */
export function mainTable(rows: ResultRow[]): string[] {
  const head = [
    'model',
    'epochs (steps of batch)',
    'PSNR dB',
    'SSIM',
    'MS-SSIM',
    '−ELBO',
    'default sampler',
    'Fréchet feat. dist.',
    'kernel dist.',
    'precision',
    'recall',
    'sample-pair MS-SSIM',
  ];
  const body = rows.map((r) => [
    r.model,
    budget(r),
    fmt(r.psnr_db),
    fmt(r.ssim),
    fmt(r.ms_ssim),
    fmt(r.nelbo),
    defaultCell(r),
    fmt(r.default_frechet_feature_distance),
    fmt(r.default_kernel_distance),
    fmt(r.default_precision),
    fmt(r.default_recall),
    fmt(r.default_diversity_ms_ssim_samples),
  ]);
  const blank = (cells: Record<number, string>): string[] => head.map((_, i) => cells[i] ?? '');
  for (const { label, row: b } of baselineSets(rows, (r) => [
    r.psnr_grey_db,
    r.psnr_train_mean_db,
    r.ssim_train_mean,
    r.ms_ssim_train_mean,
  ])) {
    body.push(blank({ 0: `*constant grey image*${label}`, 2: fmt(b.psnr_grey_db) }));
    body.push(
      blank({ 0: `*training-mean image*${label}`, 2: fmt(b.psnr_train_mean_db), 3: fmt(b.ssim_train_mean), 4: fmt(b.ms_ssim_train_mean) }),
    );
  }
  for (const { label, row: b } of realVsReal(rows))
    body.push(
      blank({
        0: `*real vs real*${label}`,
        7: fmt(b.frechet_reference),
        8: fmt(b.kernel_reference),
        9: fmt(b.precision_reference),
        10: fmt(b.recall_reference),
        11: fmt(b.diversity_ms_ssim_real),
      }),
    );
  return markdownTable(head, body);
}

const realVsReal = (rows: ResultRow[]): { label: string; row: ResultRow }[] =>
  baselineSets(rows, (r) => [r.frechet_reference, r.kernel_reference, r.precision_reference, r.recall_reference, r.diversity_ms_ssim_real]);

/** The samplers a table shows for a row: the prior, then the default sampler when it is another. */
function shownSamplers(r: ResultRow): Sampler[] {
  return r.default_sampler && r.default_sampler !== 'prior' ? ['prior', r.default_sampler] : ['prior'];
}
const samplerLabel = (r: ResultRow, s: Sampler): string => (s === r.default_sampler ? `${s} (default)` : s);

/** The sample-table row of the training images' reconstructions. */
const DECODER_REFERENCE = "*training images' reconstructions* (the decoder's reference)";

/** Prior draws against the default sampler's, and the decoder's reference for both: distances, precision and recall. */
export function sampleTable(rows: ResultRow[]): string[] {
  const head = ['model', 'sampler', 'Fréchet feat. dist.', 'kernel dist.', 'precision', 'recall', 'sample-pair MS-SSIM'];
  const quality = (n: QualityNumbers | null): string[] => [
    fmt(n?.frechet_feature_distance),
    fmt(n?.kernel_distance),
    fmt(n?.precision),
    fmt(n?.recall),
  ];
  const body = rows.flatMap((r) => [
    ...shownSamplers(r).map((s) => {
      const n = r.samplers[s];
      return [r.model, samplerLabel(r, s), ...quality(n), fmt(n?.diversity_ms_ssim_samples)];
    }),
    ...(r.training_reconstructions ? [[r.model, DECODER_REFERENCE, ...quality(r.training_reconstructions), '']] : []),
  ]);
  for (const { label, row: b } of realVsReal(rows))
    body.push([
      `*real vs real*${label}`,
      '',
      fmt(b.frechet_reference),
      fmt(b.kernel_reference),
      fmt(b.precision_reference),
      fmt(b.recall_reference),
      fmt(b.diversity_ms_ssim_real),
    ]);
  return markdownTable(head, body);
}

/** The sampler whose privacy numbers a row shows: the default one, or the prior where eval.json names none. */
export const privacySampler = (r: ResultRow): Sampler => r.default_sampler ?? 'prior';

/** Closeness of the default sampler's draws to training images, and membership inference. */
export function privacyTable(rows: ResultRow[]): string[] {
  const head = [
    'model',
    'samples of',
    'closer than held-out p1: features / pixels',
    'closer than held-out p5: features / pixels',
    'closest image a training one: features / pixels',
    'membership AUROC by −ELBO',
    'membership AUROC by recon. error',
    'chance (95%)',
  ];
  const body = rows.map((r) => {
    const s = privacySampler(r);
    const p = r.privacy[s];
    const m = r.membership;
    const both = (f: number | null | undefined, q: number | null | undefined): string => (p ? `${fmt(f)} / ${fmt(q)}` : '—');
    return [
      r.model,
      s,
      both(p?.feature.share_below_heldout_p1, p?.pixel.share_below_heldout_p1),
      both(p?.feature.share_below_heldout_p5, p?.pixel.share_below_heldout_p5),
      both(p?.share_closer_to_train.feature, p?.share_closer_to_train.pixel),
      fmt(m?.neg_elbo_auroc),
      fmt(m?.recon_mse_auroc),
      m ? `0.5 ± ${fmt(m.chance_halfwidth_95, 3)}` : '—',
    ];
  });
  body.push(['*no copying, no membership signal*', '', '0.01 / 0.01', '0.05 / 0.05', '0.5 / 0.5', '0.5', '0.5', '']);
  return markdownTable(head, body);
}

/** The model.* and train.* keys (epochs aside) in which two runs' settings differ; none when one lacks them. */
function keysApart(r: ResultRow, other: ResultRow): string[] {
  if (!r.settings || !other.settings) return [];
  const keys = [...new Set([...Object.keys(r.settings), ...Object.keys(other.settings)])].sort();
  return keys.filter((k) => r.settings?.[k] !== other.settings?.[k] && k !== 'train.epochs');
}

/** `r`'s values of `keys` as `key value`, or — for none. */
function settingsOf(r: ResultRow, keys: string[]): string {
  return keys.length === 0 ? '—' : keys.map((k) => `${k} ${r.settings?.[k] ?? '(none)'}`).join(', ');
}

/**
 * Each model of `rows` under the rows of other runs of it with other settings (an earlier results
 * run, the trials that led to a config), in their order: the settings in which each differs from
 * this run (this run's row: its values of all of them), reconstruction, the decoder's reference and
 * the default sampler's numbers.
 */
export function comparisonTable(rows: ResultRow[], earlier: ResultRow[]): string[] {
  const head = [
    'model',
    'settings apart',
    'epochs (steps of batch)',
    'PSNR dB',
    "training images' reconstructions: Fréchet",
    'default sampler',
    'Fréchet feat. dist.',
    'precision',
    'recall',
  ];
  const cellsOf = (r: ResultRow, keys: string[]): string[] => [
    r.model,
    settingsOf(r, keys),
    budget(r),
    fmt(r.psnr_db),
    fmt(r.training_reconstructions?.frechet_feature_distance),
    r.default_sampler ?? '—',
    fmt(r.default_frechet_feature_distance),
    fmt(r.default_precision),
    fmt(r.default_recall),
  ];
  const body = rows.flatMap((r) => {
    // The same run, or one of the same settings: nothing to compare.
    const before = earlier
      .filter((e) => e.model === r.model && e.run !== r.run)
      .map((e) => ({ run: e, keys: keysApart(e, r) }))
      .filter((b) => b.keys.length > 0);
    if (before.length === 0) return [];
    const all = [...new Set(before.flatMap((b) => b.keys))].sort();
    return [...before.map((b) => cellsOf(b.run, b.keys)), cellsOf(r, all)];
  });
  return body.length === 0 ? [] : markdownTable(head, body);
}

/** TSTR, TRTR and real + synthetic against real alone over classifier seeds, for the conditional models. */
export function utilityTable(rows: ResultRow[]): string[] {
  const head = [
    'model',
    'sampler',
    'score',
    'TSTR',
    'TRTR',
    'TSTR − TRTR (95%)',
    'real alone',
    'real + synthetic',
    'real + synthetic − real alone (95%)',
  ];
  const body: string[][] = [];
  for (const r of rows)
    for (const s of shownSamplers(r)) {
      const u = r.utility[s];
      if (!u) continue;
      const line = (score: string, x: UtilityScore | null): string[] =>
        x
          ? [
              r.model,
              samplerLabel(r, s),
              score,
              spread(x.tstr),
              spread(x.trtr),
              interval(x.tstr_minus_trtr),
              spread(x.real_only),
              spread(x.real_plus_synthetic),
              interval(x.synthetic_gain),
            ]
          : [r.model, samplerLabel(r, s), score, '—', '—', '—', '—', '—', '—'];
      body.push(line('accuracy', u.accuracy), line('AUC', u.auc));
    }
  if (body.length === 0) return [];
  const majority = rows.flatMap((r) => SAMPLERS.map((s) => r.utility[s]?.majority_accuracy ?? null)).find((v) => v !== null);
  body.push(['*majority class*', '', 'accuracy', fmt(majority, 3), fmt(majority, 3), '', fmt(majority, 3), fmt(majority, 3), '']);
  body.push(['*chance*', '', 'AUC', '0.5', '0.5', '', '0.5', '0.5', '']);
  return markdownTable(head, body);
}

/** Classifier seeds of the utility numbers shown (the largest count when runs differ), or undefined when none. */
export function utilitySeeds(rows: ResultRow[]): number | undefined {
  const seeds = rows.flatMap((r) => SAMPLERS.flatMap((s) => (r.utility[s] ? [r.utility[s]!.seeds] : [])));
  return seeds.length === 0 ? undefined : Math.max(...seeds);
}

const mark = (ok: boolean): string => (ok ? 'yes' : '**no**');
/** a ≥ b, forgiving the last bits of a product such as 0.8 × 0.9. */
const atLeast = (a: number, b: number): boolean => a >= b - 1e-9 * Math.abs(b);
/** For a statement where yes is the bad news. */
const warn = (bad: boolean): string => (bad ? '**yes**' : 'no');

/** Where the default sampler misses 5 × real vs real: how far the training images' own reconstructions are, the part no sampler can close. */
function limitNote(r: ResultRow, frechet: number): string {
  const limit = r.training_reconstructions?.frechet_feature_distance ?? null;
  if (limit === null || r.frechet_reference === null || atLeast(5 * r.frechet_reference, frechet)) return '';
  return ` (the training images' own reconstructions score ${fmt(limit)}: ${atLeast(5 * r.frechet_reference, limit) ? 'the decoder allows it, the sampler falls short' : 'the decoder alone misses it'})`;
}

/** The acceptance checks, computed from the rows; a model the checks need and the rows lack is named. */
export function checks(rows: ResultRow[]): string[] {
  const out: string[] = [];
  const find = (model: string): ResultRow | undefined => rows.find((r) => r.model === model);
  const missing = (model: string, what: string): void => {
    if (!find(model)) out.push(`- ${model}: not in these results, so not checked: ${what}`);
  };
  for (const r of rows)
    if (r.psnr_db !== null && r.psnr_train_mean_db !== null)
      out.push(
        `- ${r.model}: PSNR ${fmt(r.psnr_db)} dB vs the training-mean image's ${fmt(r.psnr_train_mean_db)} dB + 1: ${mark(atLeast(r.psnr_db, r.psnr_train_mean_db + 1))}`,
      );
  for (const r of rows) {
    const p = r.default_precision;
    const f = r.default_frechet_feature_distance;
    if (p === null || f === null || r.precision_reference === null || r.frechet_reference === null) {
      out.push(`- ${r.model}: no default sampler's precision or Fréchet distance in its eval.json`);
      continue;
    }
    out.push(
      `- ${r.model}, default sampler (${r.default_sampler}): precision ${fmt(p)} ≥ 0.8 × real vs real's ${fmt(r.precision_reference)} = ${fmt(0.8 * r.precision_reference)}: ${mark(atLeast(p, 0.8 * r.precision_reference))}; ` +
        `Fréchet feature distance ${fmt(f)} ≤ 5 × real vs real's ${fmt(r.frechet_reference)} = ${fmt(5 * r.frechet_reference)}: ${mark(atLeast(5 * r.frechet_reference, f))}` +
        limitNote(r, f),
    );
  }
  const gan = find('vae_gan');
  const vae = find('vae');
  if (gan) {
    if (gan.precision !== null && gan.precision_reference !== null)
      out.push(
        `- vae_gan, prior: precision ${fmt(gan.precision)} ≥ 0.5 × real vs real's ${fmt(gan.precision_reference)} = ${fmt(0.5 * gan.precision_reference)}: ${mark(atLeast(gan.precision, 0.5 * gan.precision_reference))}`,
      );
    if (vae && gan.default_frechet_feature_distance !== null && vae.default_frechet_feature_distance !== null)
      out.push(
        `- vae_gan, default sampler (${gan.default_sampler}): Fréchet feature distance ${fmt(gan.default_frechet_feature_distance)} below the Vanilla VAE's default sampler's (${vae.default_sampler}) ${fmt(vae.default_frechet_feature_distance)}: ${mark(gan.default_frechet_feature_distance < vae.default_frechet_feature_distance)}`,
      );
    for (const s of shownSamplers(gan)) {
      const d = gan.samplers[s]?.diversity_ms_ssim_samples ?? null;
      if (d !== null && gan.diversity_ms_ssim_real !== null)
        out.push(
          `- vae_gan, ${samplerLabel(gan, s)}: sample-pair MS-SSIM ${fmt(d)} within 0.1 of real pairs' ${fmt(gan.diversity_ms_ssim_real)}: ${mark(Math.abs(d - gan.diversity_ms_ssim_real) <= 0.1)}`,
        );
    }
  } else missing('vae_gan', "prior precision ≥ 0.5 × real vs real, default sampler's Fréchet distance below the Vanilla VAE's");
  if (!vae && gan) missing('vae', "the VAE-GAN's Fréchet distance is compared with it");
  const conditional = rows.filter((r) => SAMPLERS.some((s) => r.utility[s] !== null));
  for (const r of conditional)
    for (const s of shownSamplers(r)) {
      const u = r.utility[s];
      if (!u) continue;
      const a = u.accuracy;
      const seeds = `mean over ${u.seeds} classifier seeds`;
      if (a.tstr.mean !== null && a.trtr.mean !== null) {
        const auc = u.auc?.tstr.mean ?? null;
        out.push(
          `- ${r.model}, ${samplerLabel(r, s)}: TSTR accuracy ${fmt(a.tstr.mean, 3)} at or above 90% of TRTR's ${fmt(a.trtr.mean, 3)} (${seeds}): ${mark(atLeast(a.tstr.mean, 0.9 * a.trtr.mean))}; ` +
            (auc === null ? 'AUC undefined for some classifier seed' : `AUC ${fmt(auc, 3)} ≥ 0.60: ${mark(atLeast(auc, 0.6))}`),
        );
      }
      const g = a.synthetic_gain;
      if (g.mean !== null && g.low !== null && g.high !== null)
        out.push(
          `- ${r.model}, ${samplerLabel(r, s)}: real + synthetic accuracy ${spread(a.real_plus_synthetic)} vs real alone ${spread(a.real_only)}, difference ${interval(g)} (${Math.round(100 * g.level)}% interval over ${u.seeds} seeds): ` +
            `above real alone (interval above 0): ${mark(g.low > 0)}; below it (interval below 0): ${warn(g.high < 0)}`,
        );
    }
  const cvae = find('cvae');
  if (!cvae) missing('cvae', 'TSTR, and real + synthetic against real alone');
  else if (!conditional.includes(cvae)) out.push('- cvae: no utility numbers (TSTR, real + synthetic) in its eval.json');
  return out;
}
