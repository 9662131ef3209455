// Checks a merged configuration before anything runs. Every problem names the file, the key and
// what was expected, so a typo in a YAML file costs seconds, not an aborted overnight run.
import { parseNoiseSpec, type NoiseSpec } from '../util/noise.ts';
import { BACKEND_CHOICES, type ExperimentConfig, type TrainConfig } from './schema.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The key at fault (section.key), when one is. */
  readonly key?: string;
  constructor(message: string, key?: string) {
    super(message);
    this.key = key;
  }
}

type Plain = Record<string, unknown>;

/** Allowed values of the string (and small-integer) choices; every other key is typed by its default. */
const CHOICES: Record<string, readonly (string | number)[]> = {
  'model.name': ['vae', 'beta_vae', 'mssim_vae', 'cvae', 'joint_vae', 'vae_gan'],
  'model.in_channels': [1, 3],
  'model.loss_type': ['H', 'B'],
  'model.upsample': ['transpose', 'resize'],
  'data.format': ['medmnist', 'gleason', 'folder'],
  'data.resize': ['area', 'bilinear'],
  'train.backend': BACKEND_CHOICES,
};

/** Keys that take a number or one named alternative. */
const NUMBER_OR: Record<string, string> = {
  'model.kld_weight': 'M_N',
  'train.micro_batch': 'auto',
};

/** Keys whose value must be >= 1 (integers) or > 0 (reals). */
const POSITIVE_INT = [
  'model.image_size',
  'model.latent_dim',
  'model.categorical_dim',
  'model.num_discrete',
  'model.anneal_steps',
  'train.epochs',
  'train.batch_size',
  'train.memory_budget_mb',
  'train.log_every',
  'output.checkpoint_every_epochs',
  'output.keep_last',
  'output.sample_grid',
];
const NON_NEGATIVE_INT = [
  'train.max_steps',
  'train.threads',
  'data.threads',
  'data.prefetch',
  'train.seed',
  'model.num_classes',
  'output.metrics_port',
  'model.feature_layer',
  'model.capacity_max_iter',
  'output.checkpoint_every_steps',
];
const POSITIVE_REAL = [
  'train.lr',
  'train.lr_discriminator',
  'train.scheduler_gamma',
  'model.temperature',
  'model.min_temperature',
  'train.divergence_factor',
];
const NON_NEGATIVE_REAL = [
  'train.weight_decay',
  'train.grad_clip_norm',
  'model.beta',
  'model.gamma',
  'model.max_capacity',
  'model.anneal_rate',
  'model.recon_gamma',
  'model.alpha',
  'model.pixel_weight',
  'model.gan_equilibrium',
  'model.gan_margin',
];

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return `a ${typeof v}`;
}

/**
 * Checks that `value` (from `source`, a file name or "--set") has the keys and types of the
 * defaults, recursively. Unknown keys are errors: a misspelt key silently ignored is the worst bug
 * a config system can have.
 */
export function checkShape(value: Plain, defaults: Plain, source: string, prefix = ''): void {
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!(key in defaults)) {
      throw new ConfigError(`${source}: unknown key '${path}'; expected one of: ${Object.keys(defaults).join(', ')}`);
    }
    const def = defaults[key];
    if (def !== null && typeof def === 'object' && !Array.isArray(def)) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        throw new ConfigError(`${source}: '${path}' must be a section (a mapping of keys), got ${typeName(v)}`);
      }
      checkShape(v as Plain, def as Plain, source, path);
      continue;
    }
    checkValue(path, v, def, source);
  }
}

/** Keys that take true, false or one named alternative. */
const BOOLEAN_OR: Record<string, string> = {
  'train.deterministic': 'auto',
};

function checkValue(path: string, v: unknown, def: unknown, source: string): void {
  const either = BOOLEAN_OR[path];
  if (either !== undefined) {
    if (v === either || typeof v === 'boolean') return;
    throw new ConfigError(`${source}: '${path}' must be true, false or '${either}', got ${JSON.stringify(v)}`);
  }
  const alt = NUMBER_OR[path];
  if (alt !== undefined) {
    if (v === alt || (typeof v === 'number' && Number.isFinite(v))) return;
    throw new ConfigError(`${source}: '${path}' must be a number or '${alt}', got ${JSON.stringify(v)}`);
  }
  if (Array.isArray(def)) {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new ConfigError(`${source}: '${path}' must be a list of numbers, got ${JSON.stringify(v)}`);
    }
    if (path !== 'model.hidden_dims' && path !== 'data.classes' && v.length !== def.length) {
      throw new ConfigError(`${source}: '${path}' must have ${def.length} numbers, got ${v.length}`);
    }
    return;
  }
  if (typeof def === 'number' && (typeof v !== 'number' || !Number.isFinite(v))) {
    throw new ConfigError(`${source}: '${path}' must be a number, got ${JSON.stringify(v)}`);
  }
  if (typeof def === 'string' && typeof v !== 'string') {
    throw new ConfigError(`${source}: '${path}' must be a string, got ${JSON.stringify(v)}`);
  }
  if (typeof def === 'boolean' && typeof v !== 'boolean') {
    throw new ConfigError(`${source}: '${path}' must be true or false, got ${JSON.stringify(v)}`);
  }
  const choices = CHOICES[path];
  if (choices && !choices.includes(v as string | number)) {
    throw new ConfigError(
      `${source}: '${path}' must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
}

/** The noise train.corrupt puts on the encoder's input (undefined for 'none'); `source` names the config in the error. */
export function trainingCorruption(train: Pick<TrainConfig, 'corrupt'>, source = 'config'): NoiseSpec | undefined {
  if (train.corrupt === 'none') return undefined;
  const parsed = parseNoiseSpec(train.corrupt);
  if ('problem' in parsed) {
    throw new ConfigError(
      `${source}: 'train.corrupt' must be none or a noise: ${parsed.problem}, got ${JSON.stringify(train.corrupt)}`,
      'train.corrupt',
    );
  }
  return parsed.spec;
}

function get(cfg: ExperimentConfig, path: string): unknown {
  const [section, key] = path.split('.') as [keyof ExperimentConfig, string];
  return (cfg[section] as unknown as Plain)[key];
}

/** Range and cross-field checks on the merged config. `source` names where the config came from. */
export function checkValues(cfg: ExperimentConfig, source: string, worldSize = 1): void {
  const fail = (path: string, msg: string): never => {
    throw new ConfigError(`${source}: '${path}' ${msg}, got ${JSON.stringify(get(cfg, path))}`, path);
  };
  for (const p of POSITIVE_INT) {
    const v = get(cfg, p) as number;
    if (!Number.isInteger(v) || v < 1) fail(p, 'must be an integer >= 1');
  }
  for (const p of NON_NEGATIVE_INT) {
    const v = get(cfg, p) as number;
    if (!Number.isInteger(v) || v < 0) fail(p, 'must be an integer >= 0');
  }
  for (const p of POSITIVE_REAL) {
    if (!((get(cfg, p) as number) > 0)) fail(p, 'must be > 0');
  }
  for (const p of NON_NEGATIVE_REAL) {
    if (!((get(cfg, p) as number) >= 0)) fail(p, 'must be >= 0');
  }
  if (typeof cfg.model.kld_weight === 'number' && cfg.model.kld_weight < 0) fail('model.kld_weight', "must be >= 0 or 'M_N'");
  const { hidden_dims: dims, image_size: size } = cfg.model;
  if (dims.length < 1 || dims.some((d) => !Number.isInteger(d) || d < 1))
    fail('model.hidden_dims', 'must be a non-empty list of positive integers');
  const factor = 2 ** dims.length;
  if (size % factor !== 0) {
    fail(
      'model.image_size',
      `is not reachable by the conv stack: ${dims.length} stride-2 convolutions need a multiple of ${factor} (e.g. ${factor * Math.max(1, Math.round(size / factor))}); 28-px MedMNIST images are resized to image_size by the loader`,
    );
  }
  if (cfg.train.batch_size % worldSize !== 0) {
    fail('train.batch_size', `must be divisible by the number of workers (${worldSize})`);
  }
  const mb = cfg.train.micro_batch;
  if (mb !== 'auto' && (!Number.isInteger(mb) || mb < 1)) fail('train.micro_batch', "must be an integer >= 1 or 'auto'");
  if (cfg.data.classes.some((c) => !Number.isInteger(c) || c < 0))
    fail('data.classes', 'must be a list of class indices (integers >= 0), [] for all');
  trainingCorruption(cfg.train, source);
  if (!(cfg.model.l1_fraction >= 0 && cfg.model.l1_fraction <= 1)) fail('model.l1_fraction', 'must be between 0 and 1');
  if (cfg.model.min_temperature > cfg.model.temperature)
    fail('model.min_temperature', `must be <= model.temperature (${cfg.model.temperature})`);
  if (cfg.model.name === 'vae_gan' && (cfg.model.feature_layer < 1 || cfg.model.feature_layer > dims.length)) {
    fail(
      'model.feature_layer',
      `must name one of the discriminator's ${dims.length} conv blocks (1..${dims.length}) whose features measure similarity`,
    );
  }
}
