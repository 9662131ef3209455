// One line of bench/results-table.ts: a run's eval.json (format 4) flattened into the numbers the
// results pages show, rounded to 4 significant digits. Pure (no files read), so that a test can
// feed it synthetic evaluations; bench/results-table.ts reads the run directory around it.
//
// The keys before `default_sampler` are those of eval.json format 2 and keep their meaning (prior
// draws; `fitted_*` = the latent density's Gaussian, sampler `gaussian`): bench/results-doc.ts's
// ablation page and bench/vae-gan-prior-doc.ts read them.
import type { EvalFile } from '../src/eval/eval-file.ts';
import type { EvalMetrics, PosteriorSampleNumbers } from '../src/eval/evaluate.ts';
import type { SamplePrivacy } from '../src/eval/privacy.ts';
import type { PairedInterval, Spread } from '../src/eval/stats.ts';
import type { TstrMetrics, UtilitySpread } from '../src/eval/utility.ts';
import type { MachineInfo } from '../src/eval/eval-file.ts';
import { join } from 'node:path';

export type Sampler = 'prior' | 'gaussian' | 'mixture';
export const SAMPLERS: readonly Sampler[] = ['prior', 'gaussian', 'mixture'];

export const round = (v: number | null | undefined, digits = 4): number | null =>
  v === null || v === undefined || Number.isNaN(v) ? null : Number(v.toPrecision(digits));

/** Sample quality of one sampler's draws against the held-out images. */
export interface SamplerNumbers {
  frechet_feature_distance: number | null;
  kernel_distance: number | null;
  precision: number | null;
  recall: number | null;
  diversity_ms_ssim_samples: number | null;
}

/** Sample quality of images that are no draws (the training images' reconstructions): no diversity. */
export type QualityNumbers = Omit<SamplerNumbers, 'diversity_ms_ssim_samples'>;

/** How close one sampler's draws come to training images (eval.json `privacy`), against held-out images. */
export interface PrivacyNumbers {
  n_samples: number;
  n_heldout: number;
  n_train: number;
  /** Shares of samples strictly closer to a training image than the held-out images' 1st / 5th percentile (about 0.01 / 0.05 without copying), and farther than their 99th. */
  feature: { share_below_heldout_p1: number | null; share_below_heldout_p5: number | null; share_above_heldout_p99: number | null };
  pixel: { share_below_heldout_p1: number | null; share_below_heldout_p5: number | null; share_above_heldout_p99: number | null };
  /** 0.5 without copying. */
  share_closer_to_train: { feature: number | null; pixel: number | null };
  /** The closest-pairs picture, a path from the repository root (the run directory joined with eval.json's `grid`), or null. */
  grid: string | null;
}

export interface MembershipNumbers {
  n_train: number;
  n_heldout: number;
  neg_elbo_auroc: number | null;
  recon_mse_auroc: number | null;
  chance_halfwidth_95: number | null;
}

export interface SpreadNumbers {
  mean: number | null;
  std: number | null;
}
export interface IntervalNumbers {
  mean: number | null;
  low: number | null;
  high: number | null;
  level: number;
}
/** One score (accuracy or AUC) of the four classifiers over the classifier seeds. */
export interface UtilityScore {
  tstr: SpreadNumbers;
  trtr: SpreadNumbers;
  real_only: SpreadNumbers;
  real_plus_synthetic: SpreadNumbers;
  tstr_minus_trtr: IntervalNumbers;
  /** (real + synthetic) - real alone. */
  synthetic_gain: IntervalNumbers;
}
/** A conditional model's utility numbers for one sampler's draws (eval.json `tstr`, over classifier seeds). */
export interface UtilityNumbers {
  seeds: number;
  majority_accuracy: number | null;
  /** The TRTR classifier on the synthetic images against their labels: do samples show their label? */
  conditioning_auc: number | null;
  accuracy: UtilityScore;
  auc: UtilityScore | null;
}

export interface ResultRow {
  run: string;
  model: string;
  image_size: number;
  epochs: number;
  steps: number;
  /** Images per step (train.batch_size); absent from lines written before it was recorded. */
  batch_size?: number;
  /** The run's model.* and train.* settings, `section.key` to its value in YAML's flow style; absent as batch_size. */
  settings?: Record<string, string>;
  split: string;
  psnr_db: number | null;
  ssim: number | null;
  ms_ssim: number | null;
  psnr_grey_db: number | null;
  psnr_train_mean_db: number | null;
  ssim_train_mean: number | null;
  ms_ssim_train_mean: number | null;
  nelbo: number | null;
  frechet_feature_distance: number | null;
  frechet_reference: number | null;
  kernel_distance: number | null;
  kernel_reference: number | null;
  precision: number | null;
  recall: number | null;
  precision_reference: number | null;
  recall_reference: number | null;
  diversity_ms_ssim_samples: number | null;
  diversity_ms_ssim_real: number | null;
  tstr_accuracy: number | null;
  tstr_auc: number | null;
  trtr_accuracy: number | null;
  trtr_auc: number | null;
  majority_accuracy: number | null;
  real_plus_synthetic_accuracy: number | null;
  real_only_accuracy: number | null;
  fitted_frechet_feature_distance: number | null;
  fitted_kernel_distance: number | null;
  fitted_precision: number | null;
  fitted_recall: number | null;
  fitted_diversity_ms_ssim_samples: number | null;
  fitted_tstr_accuracy: number | null;
  fitted_tstr_auc: number | null;
  fitted_real_plus_synthetic_accuracy: number | null;
  /** k of the precision and recall manifolds. */
  precision_recall_k: number | null;
  /** eval.json `sampler.default`: the sampler of lowest Fréchet feature distance on default_sampler_chosen_on's images; null when eval.json names none. */
  default_sampler: Sampler | null;
  /**
   * The split whose images chose it: the validation split, or `split` itself when the data has none
   * (then the default's numbers here are selected on the images they are measured on); null as default_sampler.
   */
  default_sampler_chosen_on: string | null;
  /** The numbers of the default sampler's draws (the same as prior's, fitted_* or mixture_*). */
  default_frechet_feature_distance: number | null;
  default_kernel_distance: number | null;
  default_precision: number | null;
  default_recall: number | null;
  default_diversity_ms_ssim_samples: number | null;
  /** Components of the latent density's mixture; null without one. */
  mixture_components: number | null;
  mixture_frechet_feature_distance: number | null;
  mixture_kernel_distance: number | null;
  mixture_precision: number | null;
  mixture_recall: number | null;
  mixture_diversity_ms_ssim_samples: number | null;
  /** Per sampler (null: not measured for this model); privacy and utility also null where eval.json has none. */
  samplers: Record<Sampler, SamplerNumbers | null>;
  privacy: Record<Sampler, PrivacyNumbers | null>;
  utility: Record<Sampler, UtilityNumbers | null>;
  membership: MembershipNumbers | null;
  /** The training images' own reconstructions against the held-out images: the decoder's reference for every sampler; null where eval.json has none, absent from lines written before it. */
  training_reconstructions?: QualityNumbers | null;
  /** The sampler of the run's last per-epoch sample grid (samples/epoch-NNNN.png: the latent density's preferred one); null when unknown. */
  grid_sampler: Sampler | null;
  feature_net: string;
  backend: string;
  machine: MachineInfo;
}

/** What eval.json does not say: from the run directory. */
export interface RunInfo {
  run: string;
  model: string;
  image_size: number;
  epochs: number;
  batch_size: number;
  settings: Record<string, string>;
  grid_sampler: Sampler | null;
}

type SampleSource = Pick<EvalMetrics, 'sample_quality' | 'diversity' | 'tstr' | 'privacy'>;

function sourceOf(m: EvalMetrics, sampler: Sampler): SampleSource | null {
  if (sampler === 'prior') return m;
  const posterior: PosteriorSampleNumbers | null | undefined = sampler === 'gaussian' ? m.fitted_posterior : m.mixture_posterior;
  return posterior ?? null;
}

function qualityNumbers(q: EvalMetrics['sample_quality']): QualityNumbers {
  return {
    frechet_feature_distance: round(q.frechet_distance),
    kernel_distance: round(q.kernel_distance.mean),
    precision: round(q.precision_recall?.precision),
    recall: round(q.precision_recall?.recall),
  };
}

function samplerNumbers(s: SampleSource | null): SamplerNumbers | null {
  if (!s) return null;
  return { ...qualityNumbers(s.sample_quality), diversity_ms_ssim_samples: round(s.diversity.ms_ssim_generated) };
}

function privacyNumbers(p: SamplePrivacy | null | undefined, run: string): PrivacyNumbers | null {
  if (!p) return null;
  const shares = (d: SamplePrivacy['feature']): PrivacyNumbers['feature'] => ({
    share_below_heldout_p1: round(d.share_below_heldout_p1),
    share_below_heldout_p5: round(d.share_below_heldout_p5),
    share_above_heldout_p99: round(d.share_above_heldout_p99),
  });
  return {
    n_samples: p.n_samples,
    n_heldout: p.n_heldout,
    n_train: p.n_train,
    feature: shares(p.feature),
    pixel: shares(p.pixel),
    share_closer_to_train: { feature: round(p.share_closer_to_train.feature), pixel: round(p.share_closer_to_train.pixel) },
    grid: p.grid === null ? null : join(run, p.grid),
  };
}

const spreadNumbers = (s: Spread): SpreadNumbers => ({ mean: round(s.mean), std: round(s.std) });
const intervalNumbers = (i: PairedInterval): IntervalNumbers => ({
  mean: round(i.mean),
  low: round(i.low),
  high: round(i.high),
  level: i.level,
});
const utilityScore = (u: UtilitySpread): UtilityScore => ({
  tstr: spreadNumbers(u.tstr),
  trtr: spreadNumbers(u.trtr),
  real_only: spreadNumbers(u.real_only),
  real_plus_synthetic: spreadNumbers(u.real_plus_synthetic),
  tstr_minus_trtr: intervalNumbers(u.tstr_minus_trtr),
  synthetic_gain: intervalNumbers(u.synthetic_gain),
});

function utilityNumbers(t: TstrMetrics | null | undefined): UtilityNumbers | null {
  if (!t?.over_seeds) return null;
  return {
    seeds: t.over_seeds.seeds.length,
    majority_accuracy: round(t.majority_accuracy),
    conditioning_auc: round(t.conditioning.auc),
    accuracy: utilityScore(t.over_seeds.accuracy),
    auc: t.over_seeds.auc ? utilityScore(t.over_seeds.auc) : null,
  };
}

export function resultRow(info: RunInfo, evaluation: EvalFile): ResultRow {
  const m = evaluation.metrics;
  const b = m.reconstruction.baselines;
  const samplers = Object.fromEntries(SAMPLERS.map((s) => [s, samplerNumbers(sourceOf(m, s))])) as ResultRow['samplers'];
  const privacy = Object.fromEntries(SAMPLERS.map((s) => [s, privacyNumbers(sourceOf(m, s)?.privacy, info.run)])) as ResultRow['privacy'];
  const utility = Object.fromEntries(SAMPLERS.map((s) => [s, utilityNumbers(sourceOf(m, s)?.tstr)])) as ResultRow['utility'];
  const chosen = m.sampler?.default;
  const defaultSampler = chosen && SAMPLERS.includes(chosen) ? chosen : null;
  const chosenOn = defaultSampler ? (m.sampler?.chosen_on ?? null) : null;
  const chosenNumbers = defaultSampler ? samplers[defaultSampler] : null;
  const mixture = samplers.mixture;
  const fitted = m.fitted_posterior;
  return {
    run: info.run,
    model: info.model,
    image_size: info.image_size,
    epochs: info.epochs,
    batch_size: info.batch_size,
    settings: info.settings,
    steps: evaluation.model.step,
    split: evaluation.split,
    psnr_db: round(m.reconstruction.psnr),
    ssim: round(m.reconstruction.ssim),
    ms_ssim: round(m.reconstruction.ms_ssim),
    psnr_grey_db: round(b.constant_grey.psnr),
    psnr_train_mean_db: round(b.train_mean.psnr),
    ssim_train_mean: round(b.train_mean.ssim),
    ms_ssim_train_mean: round(b.train_mean.ms_ssim),
    nelbo: round(m.reconstruction.nelbo),
    frechet_feature_distance: round(m.sample_quality.frechet_distance),
    frechet_reference: round(m.sample_quality.reference_frechet_distance),
    kernel_distance: round(m.sample_quality.kernel_distance.mean),
    kernel_reference: round(m.sample_quality.reference_kernel_distance.mean),
    precision: round(m.sample_quality.precision_recall?.precision),
    recall: round(m.sample_quality.precision_recall?.recall),
    precision_reference: round(m.sample_quality.reference_precision_recall?.precision),
    recall_reference: round(m.sample_quality.reference_precision_recall?.recall),
    diversity_ms_ssim_samples: round(m.diversity.ms_ssim_generated),
    diversity_ms_ssim_real: round(m.diversity.ms_ssim_real),
    tstr_accuracy: round(m.tstr?.tstr.accuracy),
    tstr_auc: round(m.tstr?.tstr.auc),
    trtr_accuracy: round(m.tstr?.trtr.accuracy),
    trtr_auc: round(m.tstr?.trtr.auc),
    majority_accuracy: round(m.tstr?.majority_accuracy),
    real_plus_synthetic_accuracy: round(m.tstr?.augmentation.real_plus_synthetic.accuracy),
    real_only_accuracy: round(m.tstr?.augmentation.real_only.accuracy),
    fitted_frechet_feature_distance: round(fitted?.sample_quality.frechet_distance),
    fitted_kernel_distance: round(fitted?.sample_quality.kernel_distance.mean),
    fitted_precision: round(fitted?.sample_quality.precision_recall?.precision),
    fitted_recall: round(fitted?.sample_quality.precision_recall?.recall),
    fitted_diversity_ms_ssim_samples: round(fitted?.diversity.ms_ssim_generated),
    fitted_tstr_accuracy: round(fitted?.tstr?.tstr.accuracy),
    fitted_tstr_auc: round(fitted?.tstr?.tstr.auc),
    fitted_real_plus_synthetic_accuracy: round(fitted?.tstr?.augmentation.real_plus_synthetic.accuracy),
    precision_recall_k: m.sample_quality.precision_recall?.k ?? null,
    default_sampler: defaultSampler,
    default_sampler_chosen_on: chosenOn,
    default_frechet_feature_distance: chosenNumbers?.frechet_feature_distance ?? null,
    default_kernel_distance: chosenNumbers?.kernel_distance ?? null,
    default_precision: chosenNumbers?.precision ?? null,
    default_recall: chosenNumbers?.recall ?? null,
    default_diversity_ms_ssim_samples: chosenNumbers?.diversity_ms_ssim_samples ?? null,
    mixture_components: m.mixture_posterior?.components ?? null,
    mixture_frechet_feature_distance: mixture?.frechet_feature_distance ?? null,
    mixture_kernel_distance: mixture?.kernel_distance ?? null,
    mixture_precision: mixture?.precision ?? null,
    mixture_recall: mixture?.recall ?? null,
    mixture_diversity_ms_ssim_samples: mixture?.diversity_ms_ssim_samples ?? null,
    samplers,
    privacy,
    utility,
    membership: m.membership
      ? {
          n_train: m.membership.n_train,
          n_heldout: m.membership.n_heldout,
          neg_elbo_auroc: round(m.membership.neg_elbo.auroc),
          recon_mse_auroc: round(m.membership.recon_mse.auroc),
          chance_halfwidth_95: round(m.membership.chance_halfwidth_95),
        }
      : null,
    training_reconstructions: m.training_reconstructions ? qualityNumbers(m.training_reconstructions.sample_quality) : null,
    grid_sampler: info.grid_sampler,
    feature_net: m.sample_quality.feature_net.id,
    backend: evaluation.meta.backend,
    machine: evaluation.meta.machine,
  };
}
