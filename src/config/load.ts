// Configuration as data: defaults (schema.ts) <- YAML file <- `--set key=value`, then validated.
// PyTorch-VAE's YAML layout (model_params, data_params, exp_params, ...) is accepted and translated,
// so users can bring their existing experiment files.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { DEFAULT_CONFIG, type ExperimentConfig } from './schema.ts';
import { checkShape, checkValues, ConfigError } from './validate.ts';

type Plain = Record<string, unknown>;

const PYTORCH_VAE_SECTIONS = ['model_params', 'data_params', 'exp_params', 'trainer_params', 'logging_params'];

/** PyTorch-VAE class names -> our model names. */
const PYTORCH_VAE_MODELS: Record<string, string> = {
  VanillaVAE: 'vae', BetaVAE: 'beta_vae', MSSIMVAE: 'mssim_vae', ConditionalVAE: 'cvae', JointVAE: 'joint_vae',
};

/** PyTorch-VAE key (per section) -> our 'section.key'; null = meaningful only to PyTorch, accepted and ignored. */
const PYTORCH_VAE_KEYS: Record<string, Record<string, string | null>> = {
  model_params: {
    name: 'model.name', in_channels: 'model.in_channels', latent_dim: 'model.latent_dim', hidden_dims: 'model.hidden_dims',
    beta: 'model.beta', gamma: 'model.gamma', max_capacity: 'model.max_capacity', Capacity_max_iter: 'model.capacity_max_iter',
    loss_type: 'model.loss_type', num_classes: 'model.num_classes', img_size: 'model.image_size',
    categorical_dim: 'model.categorical_dim', temperature: 'model.temperature', anneal_rate: 'model.anneal_rate',
    anneal_interval: 'model.anneal_steps', window_size: null, size_average: null,
    latent_min_capacity: 'model.cont_capacity.0', latent_max_capacity: 'model.cont_capacity.1',
    latent_gamma: 'model.cont_capacity.2', latent_num_iter: 'model.cont_capacity.3',
    categorical_min_capacity: 'model.disc_capacity.0', categorical_max_capacity: 'model.disc_capacity.1',
    categorical_gamma: 'model.disc_capacity.2', categorical_num_iter: 'model.disc_capacity.3',
  },
  data_params: {
    data_path: 'data.path', train_batch_size: 'train.batch_size', patch_size: 'model.image_size',
    val_batch_size: null, num_workers: 'data.threads',
  },
  exp_params: {
    LR: 'train.lr', weight_decay: 'train.weight_decay', scheduler_gamma: 'train.scheduler_gamma',
    kld_weight: 'model.kld_weight', manual_seed: 'train.seed',
  },
  trainer_params: { max_epochs: 'train.epochs', gpus: null },
  logging_params: { save_dir: 'output.dir', name: 'output.name' },
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

function translatePytorchVae(doc: Plain, source: string): Plain {
  const out: Plain = {};
  for (const [section, body] of Object.entries(doc)) {
    const table = PYTORCH_VAE_KEYS[section];
    if (!table) throw new ConfigError(`${source}: unknown section '${section}'; a PyTorch-VAE config has ${PYTORCH_VAE_SECTIONS.join(', ')}`);
    if (!isPlain(body)) throw new ConfigError(`${source}: '${section}' must be a mapping`);
    for (const [key, value] of Object.entries(body)) {
      if (!(key in table)) {
        throw new ConfigError(`${source}: unsupported key '${section}.${key}'; known keys of ${section}: ${Object.keys(table).join(', ')}`);
      }
      const target = table[key];
      if (target === null || target === undefined) continue;
      let v = value;
      if (target === 'model.name') {
        const mapped = PYTORCH_VAE_MODELS[String(value)];
        if (!mapped) throw new ConfigError(`${source}: 'model_params.name' ${JSON.stringify(value)} has no medvae counterpart; supported: ${Object.keys(PYTORCH_VAE_MODELS).join(', ')}`);
        v = mapped;
      }
      setPath(out, target, v);
    }
  }
  // Capacity lists given key by key start from the defaults for the keys PyTorch-VAE left out.
  const model = out.model as Plain | undefined;
  for (const key of ['cont_capacity', 'disc_capacity'] as const) {
    const partial = model?.[key] as unknown[] | undefined;
    if (partial) model![key] = DEFAULT_CONFIG.model[key].map((d, i) => partial[i] ?? d);
  }
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

export interface LoadOptions {
  file?: string;
  sets?: readonly string[];
  /** Number of data-parallel workers the config will run on (batch divisibility). */
  worldSize?: number;
}

/** Reads a YAML experiment file (ours or PyTorch-VAE's) into a plain object of our layout. */
export function readConfigFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read config file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlain(doc)) throw new ConfigError(`${file}: expected a mapping with sections model, data, train, output`);
  return Object.keys(doc).some((k) => PYTORCH_VAE_SECTIONS.includes(k)) ? translatePytorchVae(doc, file) : doc;
}

/** defaults <- file <- overrides, checked. */
export function loadConfig(opts: LoadOptions = {}): ExperimentConfig {
  let cfg = structuredClone(DEFAULT_CONFIG);
  const sources: string[] = [];
  if (opts.file) {
    const doc = readConfigFile(opts.file);
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
