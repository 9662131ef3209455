// Configuration as data: defaults (schema.ts) <- YAML file <- `--set key=value`, then validated.
// PyTorch-VAE's YAML layout (model_params, data_params, exp_params, ...) is accepted and translated,
// so users can bring their existing experiment files.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { DEFAULT_CONFIG, type ExperimentConfig } from './schema.ts';
import { checkShape, checkValues, ConfigError } from './validate.ts';
import { checkPathAdvice } from '../util/similar-path.ts';

type Plain = Record<string, unknown>;

const PYTORCH_VAE_SECTIONS = ['model_params', 'data_params', 'exp_params', 'trainer_params', 'logging_params'];

/** Receives one line per PyTorch-VAE key that is accepted but changes nothing here (or yields to another). */
export type NoteSink = (line: string) => void;

/** PyTorch-VAE class names -> our model names. */
const PYTORCH_VAE_MODELS: Record<string, string> = {
  VanillaVAE: 'vae',
  BetaVAE: 'beta_vae',
  MSSIMVAE: 'mssim_vae',
  ConditionalVAE: 'cvae',
  JointVAE: 'joint_vae',
};

/**
 * Where one PyTorch-VAE key lands: on our key `to`; on `to` only when `unless` (the spelling that wins)
 * did not set it; or nowhere, with a note saying why.
 */
type Rule = { to: string; unless?: string } | { ignored: string };
const to = (path: string): Rule => ({ to: path });
const unless = (path: string, winner: string): Rule => ({ to: path, unless: winner });
const ignored = (why: string): Rule => ({ ignored: why });

// The keys of configs/{vae,bbvae,bhvae,mssim_vae,cvae,joint_vae}.yaml and of the models' constructors,
// plus the pre-2022 layout (data keys in exp_params, seed in logging_params) that older copies carry.
const PYTORCH_VAE_KEYS: Record<string, Record<string, Rule>> = {
  model_params: {
    name: to('model.name'),
    in_channels: to('model.in_channels'),
    latent_dim: to('model.latent_dim'),
    hidden_dims: to('model.hidden_dims'),
    beta: to('model.beta'),
    gamma: to('model.gamma'),
    max_capacity: to('model.max_capacity'),
    Capacity_max_iter: to('model.capacity_max_iter'),
    loss_type: to('model.loss_type'),
    num_classes: to('model.num_classes'),
    img_size: unless('model.image_size', 'data_params.patch_size'),
    categorical_dim: to('model.categorical_dim'),
    temperature: to('model.temperature'),
    anneal_rate: to('model.anneal_rate'),
    anneal_interval: to('model.anneal_steps'),
    alpha: to('model.alpha'),
    latent_min_capacity: to('model.cont_capacity.0'),
    latent_max_capacity: to('model.cont_capacity.1'),
    latent_gamma: to('model.cont_capacity.2'),
    latent_num_iter: to('model.cont_capacity.3'),
    categorical_min_capacity: to('model.disc_capacity.0'),
    categorical_max_capacity: to('model.disc_capacity.1'),
    categorical_gamma: to('model.disc_capacity.2'),
    categorical_num_iter: to('model.disc_capacity.3'),
    window_size: ignored('the MS-SSIM loss always uses an 11-pixel Gaussian window'),
    size_average: ignored('the MS-SSIM loss is always averaged over the image'),
  },
  data_params: {
    data_path: to('data.path'),
    train_batch_size: to('train.batch_size'),
    patch_size: to('model.image_size'),
    val_batch_size: ignored('training runs no validation pass here; held-out scores come from `medvae eval`'),
    num_workers: ignored('PyTorch DataLoader processes; decode threads here are data.threads'),
  },
  exp_params: {
    LR: to('train.lr'),
    weight_decay: to('train.weight_decay'),
    scheduler_gamma: to('train.scheduler_gamma'),
    kld_weight: to('model.kld_weight'),
    manual_seed: to('train.seed'),
    dataset: ignored('the dataset is data.format and data.path'),
    data_path: unless('data.path', 'data_params.data_path'),
    img_size: unless('model.image_size', 'data_params.patch_size'),
    batch_size: unless('train.batch_size', 'data_params.train_batch_size'),
  },
  trainer_params: {
    max_epochs: to('train.epochs'),
    max_nb_epochs: unless('train.epochs', 'trainer_params.max_epochs'),
    gpus: ignored('the backend is train.backend; several devices train under medvae-dist'),
    distributed_backend: ignored('data-parallel training is medvae-dist'),
  },
  logging_params: {
    save_dir: to('output.dir'),
    name: to('output.name'),
    manual_seed: unless('train.seed', 'exp_params.manual_seed'),
  },
};

function isPlain(v: unknown): v is Plain {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Sets `path` (dot-separated; a numeric last part indexes a list) inside `target`, creating sections. */
function setPath(target: Plain, path: string, value: unknown): void {
  const parts = path.split('.');
  let node: Plain = target;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    const nextIsIndex = /^\d+$/.test(parts[i + 1]!);
    if (!(part in node) || node[part] === null || typeof node[part] !== 'object') node[part] = nextIsIndex ? [] : {};
    node = node[part] as Plain;
  }
  node[parts[parts.length - 1]!] = value;
}

function getPath(source: Plain, path: string): unknown {
  let node: unknown = source;
  for (const part of path.split('.')) node = isPlain(node) ? node[part] : undefined;
  return node;
}

interface PytorchVaeEntry {
  where: string;
  rule: Rule;
  value: unknown;
}

/** Every key of the document with its rule; an unknown section or key is an error naming the known ones. */
function pytorchVaeEntries(doc: Plain, source: string): PytorchVaeEntry[] {
  const entries: PytorchVaeEntry[] = [];
  for (const [section, body] of Object.entries(doc)) {
    // Own keys only: a key named like an Object.prototype member must not find a rule.
    const table = Object.hasOwn(PYTORCH_VAE_KEYS, section) ? PYTORCH_VAE_KEYS[section]! : undefined;
    if (!table)
      throw new ConfigError(`${source}: unknown section '${section}'; a PyTorch-VAE config has ${PYTORCH_VAE_SECTIONS.join(', ')}`);
    if (!isPlain(body)) throw new ConfigError(`${source}: '${section}' must be a mapping`);
    for (const [key, value] of Object.entries(body)) {
      if (!Object.hasOwn(table, key)) {
        throw new ConfigError(`${source}: unsupported key '${section}.${key}'; known keys of ${section}: ${Object.keys(table).join(', ')}`);
      }
      entries.push({ where: `${section}.${key}`, rule: table[key]!, value });
    }
  }
  return entries;
}

function medvaeModelName(value: unknown, source: string): string {
  const mapped = typeof value === 'string' && Object.hasOwn(PYTORCH_VAE_MODELS, value) ? PYTORCH_VAE_MODELS[value] : undefined;
  if (!mapped) {
    throw new ConfigError(
      `${source}: 'model_params.name' ${JSON.stringify(value)} has no medvae counterpart; medvae has ${Object.keys(PYTORCH_VAE_MODELS).join(', ')}`,
    );
  }
  return mapped;
}

/** Capacity lists given key by key start from the defaults for the keys PyTorch-VAE left out. */
function fillCapacities(model: Plain | undefined): void {
  for (const key of ['cont_capacity', 'disc_capacity'] as const) {
    const partial = model?.[key] as unknown[] | undefined;
    if (partial) model![key] = DEFAULT_CONFIG.model[key].map((d, i) => partial[i] ?? d);
  }
}

/**
 * PyTorch-VAE has no temperature floor (its JointVAE floors at the start, so never anneals): a start
 * below our default floor lowers the floor to it instead of failing on a key the file never named.
 */
function fitTemperatureFloor(model: Plain | undefined, source: string, note: NoteSink): void {
  const start = model?.temperature;
  const floor = DEFAULT_CONFIG.model.min_temperature;
  if (typeof start !== 'number' || start >= floor) return;
  model!.min_temperature = start;
  note(`${source}: model_params.temperature ${start} is below the default model.min_temperature ${floor}; the floor is set to ${start}`);
}

function translatePytorchVae(doc: Plain, source: string, note: NoteSink): Plain {
  const out: Plain = {};
  const yielding: { where: string; to: string; winner: string; value: unknown }[] = [];
  for (const { where, rule, value } of pytorchVaeEntries(doc, source)) {
    if ('ignored' in rule) note(`${source}: ${where} ignored: ${rule.ignored}`);
    else if (rule.unless) yielding.push({ where, to: rule.to, winner: rule.unless, value });
    else setPath(out, rule.to, rule.to === 'model.name' ? medvaeModelName(value, source) : value);
  }
  // Second spellings apply after the first pass, only where the winning spelling left the key unset.
  for (const { where, to: path, winner, value } of yielding) {
    const current = getPath(out, path);
    if (current === undefined) setPath(out, path, value);
    else if (current !== value)
      note(`${source}: ${where} ${JSON.stringify(value)} ignored: ${winner} sets ${path} to ${JSON.stringify(current)}`);
  }
  const model = out.model as Plain | undefined;
  fillCapacities(model);
  fitTemperatureFloor(model, source, note);
  return out;
}

/** Deep merge of plain sections; lists and scalars replace. */
function merge<T>(base: T, over: Plain): T {
  const result = structuredClone(base) as Plain;
  for (const [k, v] of Object.entries(over)) {
    result[k] = isPlain(v) && isPlain(result[k]) ? merge(result[k], v) : v;
  }
  return result as T;
}

/** Parses `section.key=value` overrides; values are YAML scalars or flow lists (`[32, 64]`). */
export function parseOverrides(sets: readonly string[]): Plain {
  const out: Plain = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${s}: expected section.key=value, e.g. --set train.lr=0.001`);
    const key = s.slice(0, eq).trim();
    if (!/^[a-z_]+\.[a-zA-Z_0-9]+$/.test(key)) throw new ConfigError(`--set ${s}: key '${key}' must be section.key, e.g. train.lr`);
    setPath(out, key, parseYaml(s.slice(eq + 1)));
  }
  return out;
}

/** Checks `--set` overrides on their own (syntax, known keys, types), before any file is read. */
export function checkOverrides(sets: readonly string[]): void {
  checkShape(parseOverrides(sets), DEFAULT_CONFIG as unknown as Plain, '--set');
}

export interface LoadOptions {
  file?: string;
  sets?: readonly string[];
  /** Number of data-parallel workers the config will run on (batch divisibility). */
  worldSize?: number;
  /** Gets the notes on PyTorch-VAE keys accepted without effect; without it they are dropped. */
  onNote?: NoteSink;
}

const dropNote: NoteSink = () => {};

/** Why a config file cannot be read, and what to do: a missing path (with a near name), a folder, or the system's reason. */
export function describeUnreadableConfig(file: string, e: NodeJS.ErrnoException): string {
  if (e.code === 'ENOENT') return `${file} does not exist; ${checkPathAdvice(file)}`;
  if (e.code === 'EISDIR') {
    let yamls: string[] = [];
    try {
      yamls = readdirSync(file).filter((n) => /\.ya?ml$/i.test(n));
    } catch {
      // An unreadable folder: no example to give.
    }
    const example = yamls.length > 0 ? ` such as ${join(file, yamls.sort()[0]!)}` : '';
    return `${file} is a folder, expected a YAML file${example}`;
  }
  return `${file}: cannot read config file (${e.code ?? e.message})`;
}

/** Reads a YAML experiment file (ours or PyTorch-VAE's) into a plain object of our layout. */
export function readConfigFile(file: string, onNote: NoteSink = dropNote): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(describeUnreadableConfig(file, e as NodeJS.ErrnoException));
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    // The parser's first line ends in " at line L, column C:" before a snippet; say where, then what.
    const pos = (e as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const what = (e as Error).message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
    throw new ConfigError(`${file}: not valid YAML${where}: ${what}; correct the file there`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlain(doc)) throw new ConfigError(`${file}: expected a mapping with sections model, data, train, output`);
  return Object.keys(doc).some((k) => PYTORCH_VAE_SECTIONS.includes(k)) ? translatePytorchVae(doc, file, onNote) : doc;
}

/** defaults <- file <- overrides, checked. */
export function loadConfig(opts: LoadOptions = {}): ExperimentConfig {
  let cfg = structuredClone(DEFAULT_CONFIG);
  const sources: string[] = [];
  if (opts.file) {
    const doc = readConfigFile(opts.file, opts.onNote);
    checkShape(doc, DEFAULT_CONFIG as unknown as Plain, opts.file);
    cfg = merge(cfg, doc);
    sources.push(opts.file);
  }
  if (opts.sets && opts.sets.length > 0) {
    const over = parseOverrides(opts.sets);
    checkShape(over, DEFAULT_CONFIG as unknown as Plain, '--set');
    cfg = merge(cfg, over);
    sources.push('--set');
  }
  checkValues(cfg, sources.join(' + ') || 'defaults', opts.worldSize ?? 1);
  return cfg;
}

export function configToYaml(cfg: ExperimentConfig): string {
  return stringifyYaml(cfg);
}
