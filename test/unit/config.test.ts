// Experiment configs: loadConfig's defaults, files, --set overrides and the errors that name the
// key, every shipped config, and PyTorch-VAE's experiment files for the variants medvae has. One
// process for both, as a process costs about a second to start: each describe block below keeps its
// state to itself.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { loadConfig, parseOverrides } from '../../src/config/load.ts';
import { DEFAULT_CONFIG, type ExperimentConfig } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { readRunConfig } from '../../src/run/checkpoint.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('config: defaults, files, overrides and their errors', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'medvae-config-'));
  });
  function file(name: string, text: string): string {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  }

  test('no file gives the documented defaults (Vanilla VAE on the bundled RetinaMNIST at 64x64)', () => {
    const cfg = loadConfig();
    assert.deepEqual(cfg, DEFAULT_CONFIG);
    assert.equal(cfg.model.name, 'vae');
    assert.equal(cfg.model.kld_weight, 0.00025);
  });

  test('a YAML file overrides defaults section by section, lists replace', () => {
    const cfg = loadConfig({ file: file('a.yaml', 'model:\n  hidden_dims: [8, 16]\n  image_size: 32\ntrain:\n  lr: 0.001\n') });
    assert.deepEqual(cfg.model.hidden_dims, [8, 16]);
    assert.equal(cfg.model.image_size, 32);
    assert.equal(cfg.train.lr, 0.001);
    assert.equal(cfg.train.batch_size, DEFAULT_CONFIG.train.batch_size);
  });

  test('an unknown key names the file, the key and the keys expected', () => {
    const f = file('typo.yaml', 'train:\n  learning_rate: 0.1\n');
    assert.throws(
      () => loadConfig({ file: f }),
      (e: Error) => e.message.includes(f) && e.message.includes("'train.learning_rate'") && e.message.includes('lr'),
    );
  });

  test('a wrong type names the key and what was expected', () => {
    const f = file('type.yaml', 'train:\n  batch_size: "sixty-four"\n');
    assert.throws(() => loadConfig({ file: f }), /'train.batch_size' must be a number, got "sixty-four"/);
    assert.throws(() => loadConfig({ file: file('enum.yaml', 'model:\n  name: gan\n') }), /'model.name' must be one of "vae", "beta_vae"/);
  });

  test("train.deterministic takes true, false or 'auto' (the default: on for several workers only)", () => {
    assert.equal(loadConfig({}).train.deterministic, 'auto');
    assert.equal(loadConfig({ sets: ['train.deterministic=true'] }).train.deterministic, true);
    assert.equal(loadConfig({ sets: ['train.deterministic=false'] }).train.deterministic, false);
    assert.throws(
      () => loadConfig({ sets: ['train.deterministic=sometimes'] }),
      /'train.deterministic' must be true, false or 'auto', got "sometimes"/,
    );
  });

  test('an image size the conv stack cannot reach is refused with the nearest that works', () => {
    assert.throws(
      () => loadConfig({ sets: ['model.image_size=28'] }),
      /'model.image_size' is not reachable by the conv stack: 5 stride-2 convolutions need a multiple of 32 \(e\.g\. 32\)/,
    );
    assert.equal(loadConfig({ sets: ['model.image_size=28', 'model.hidden_dims=[8, 16]'] }).model.image_size, 28);
  });

  test('model.l1_fraction is a share between 0 and 1 (0, MS-SSIM alone, by default)', () => {
    assert.equal(loadConfig({}).model.l1_fraction, 0);
    assert.equal(loadConfig({ sets: ['model.l1_fraction=0.16'] }).model.l1_fraction, 0.16);
    assert.throws(() => loadConfig({ sets: ['model.l1_fraction=1.5'] }), /'model.l1_fraction' must be between 0 and 1, got 1.5/);
    assert.throws(() => loadConfig({ sets: ['model.l1_fraction=-0.1'] }), /'model.l1_fraction' must be between 0 and 1, got -0.1/);
  });

  test('a global batch not divisible by the number of workers is refused', () => {
    assert.throws(
      () => loadConfig({ sets: ['train.batch_size=63'], worldSize: 2 }),
      /'train.batch_size' must be divisible by the number of workers \(2\), got 63/,
    );
    assert.equal(loadConfig({ sets: ['train.batch_size=64'], worldSize: 2 }).train.batch_size, 64);
  });

  test('--set parses YAML scalars and lists and overrides the file', () => {
    assert.deepEqual(parseOverrides(['train.lr=0.001', 'model.hidden_dims=[4, 8]', 'model.kld_weight=M_N']), {
      train: { lr: 0.001 },
      model: { hidden_dims: [4, 8], kld_weight: 'M_N' },
    });
    const cfg = loadConfig({ file: file('b.yaml', 'train:\n  lr: 0.01\n'), sets: ['train.lr=0.002'] });
    assert.equal(cfg.train.lr, 0.002);
    assert.throws(() => parseOverrides(['lr']), /--set lr: expected section.key=value/);
    assert.throws(() => loadConfig({ sets: ['train.lrr=1'] }), /--set: unknown key 'train.lrr'/);
  });

  test('an empty or non-mapping file is handled clearly', () => {
    assert.deepEqual(loadConfig({ file: file('empty.yaml', '') }), DEFAULT_CONFIG);
    assert.throws(() => loadConfig({ file: file('list.yaml', '- 1\n- 2\n') }), /expected a mapping with sections/);
    assert.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), /missing\.yaml does not exist; check the path$/);
    assert.throws(() => loadConfig({ file: join(dir, 'empty.yam') }), /empty\.yam does not exist; did you mean .*empty\.yaml\?$/);
    assert.throws(() => loadConfig({ file: dir }), /is a folder, expected a YAML file such as .*\.yaml$/);
  });

  test('a YAML syntax error says where, what, and to correct it there, in one line', () => {
    const bad = file('syntax.yaml', 'train:\n  lr: [0.1, 0.2\n');
    assert.throws(
      () => loadConfig({ file: bad }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /^\S*syntax\.yaml: not valid YAML at line 3, column 1: Flow sequence .* end with a \]; correct the file there$/.test(e.message),
    );
  });

  test("a value error names its key, so the command line can tell its own mistakes (exit 2) from a file's", () => {
    assert.throws(
      () => loadConfig({ sets: ['train.epochs=0'] }),
      (e: unknown) => e instanceof ConfigError && e.key === 'train.epochs',
    );
  });

  test("VAE-GAN's feature_layer must name one of the discriminator's conv blocks", () => {
    assert.throws(
      () => loadConfig({ sets: ['model.name=vae_gan', 'model.feature_layer=6'] }),
      /'model.feature_layer' must name one of the discriminator's 5 conv blocks \(1\.\.5\)/,
    );
    assert.throws(() => loadConfig({ sets: ['model.name=vae_gan', 'model.feature_layer=0'] }), /\(1\.\.5\)/);
    assert.equal(loadConfig({ sets: ['model.name=vae_gan', 'model.feature_layer=5'] }).model.feature_layer, 5);
  });

  test("a run's config.yaml written before a key existed loads with that key's default", () => {
    const run = mkdtempSync(join(tmpdir(), 'medvae-old-run-'));
    const old = structuredClone(DEFAULT_CONFIG) as unknown as { model: Record<string, unknown> };
    delete old.model['pixel_weight'];
    delete old.model['alpha'];
    writeFileSync(join(run, 'config.yaml'), stringifyYaml(old));
    const cfg = readRunConfig(run);
    assert.equal(cfg.model.pixel_weight, DEFAULT_CONFIG.model.pixel_weight);
    assert.equal(cfg.model.alpha, DEFAULT_CONFIG.model.alpha);
    rmSync(run, { recursive: true });
  });

  test('every experiment in configs/ loads and validates', () => {
    const dir = join(import.meta.dirname, '..', '..', 'configs');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 10);
    for (const file of files) {
      const cfg = loadConfig({ file: join(dir, file) });
      assert.ok(cfg.train.epochs > 0, file);
    }
  });
});

describe("config-pytorch-vae: PyTorch-VAE's experiment files", () => {
  // PyTorch-VAE's experiment files for the variants medvae has, written here with the reference's keys
  // and values (AntixK/PyTorch-VAE configs/*.yaml), loaded through loadConfig.

  let dir: string;
  before(() => {
    dir = tempDir('medvae-pytorch-vae-');
  });

  function write(name: string, text: string): string {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  }

  function load(name: string, text: string): { cfg: ExperimentConfig; notes: string[] } {
    const notes: string[] = [];
    const cfg = loadConfig({ file: write(name, text), onNote: (line) => notes.push(line) });
    return { cfg, notes };
  }

  /** The sections every reference file shares; `logging` adds keys to logging_params (bbvae.yaml's seed). */
  function referenceYaml(modelParams: string, maxEpochs: number, name: string, logging = ''): string {
    return `model_params:
${modelParams}
data_params:
  data_path: "Data/"
  train_batch_size: 64
  val_batch_size:  64
  patch_size: 64
  num_workers: 4

exp_params:
  LR: 0.005
  weight_decay: 0.0
  scheduler_gamma: 0.95
  kld_weight: 0.00025
  manual_seed: 1265

trainer_params:
  gpus: [1]
  max_epochs: ${maxEpochs}

logging_params:
  save_dir: "logs/"
${logging}  name: "${name}"
`;
  }

  /** One single-line note for each key that has no effect here (or yields to another), naming the key. */
  const SHARED_NOTES = ['data_params.val_batch_size', 'data_params.num_workers', 'trainer_params.gpus'];

  function assertNotes(notes: string[], keys: string[]): void {
    assert.equal(notes.length, keys.length, notes.join('\n'));
    for (const key of keys)
      assert.ok(
        notes.some((n) => new RegExp(`: ${key.replace('.', '\\.')}( \\S+)? ignored: [^\\n]+$`).test(n)),
        `${key}: ${notes.join('\n')}`,
      );
  }

  function assertSharedSections(cfg: ExperimentConfig, epochs: number, name: string): void {
    assert.equal(cfg.data.path, 'Data/');
    assert.equal(cfg.train.batch_size, 64);
    assert.equal(cfg.model.image_size, 64);
    assert.equal(cfg.data.threads, DEFAULT_CONFIG.data.threads, 'num_workers is not the decode-thread count');
    assert.equal(cfg.train.lr, 0.005);
    assert.equal(cfg.train.weight_decay, 0);
    assert.equal(cfg.train.scheduler_gamma, 0.95);
    assert.equal(cfg.model.kld_weight, 0.00025);
    assert.equal(cfg.train.seed, 1265);
    assert.equal(cfg.train.epochs, epochs);
    assert.equal(cfg.output.dir, 'logs/');
    assert.equal(cfg.output.name, name);
  }

  test('vae.yaml (VanillaVAE) loads with a note for each key that means nothing here', () => {
    const { cfg, notes } = load(
      'vae.yaml',
      referenceYaml("  name: 'VanillaVAE'\n  in_channels: 3\n  latent_dim: 128\n", 100, 'VanillaVAE'),
    );
    assert.equal(cfg.model.name, 'vae');
    assert.equal(cfg.model.in_channels, 3);
    assert.equal(cfg.model.latent_dim, 128);
    assertSharedSections(cfg, 100, 'VanillaVAE');
    assertNotes(notes, SHARED_NOTES);
  });

  test('bbvae.yaml (BetaVAE, Burgess) loads, logging_params.manual_seed included', () => {
    const model =
      "  name: 'BetaVAE'\n  in_channels: 3\n  latent_dim: 128\n  loss_type: 'B'\n  gamma: 10.0\n  max_capacity: 25\n  Capacity_max_iter: 10000\n";
    const { cfg, notes } = load('bbvae.yaml', referenceYaml(model, 10, 'BetaVAE', '  manual_seed: 1265\n'));
    assert.equal(cfg.model.name, 'beta_vae');
    assert.equal(cfg.model.loss_type, 'B');
    assert.equal(cfg.model.gamma, 10);
    assert.equal(cfg.model.max_capacity, 25);
    assert.equal(cfg.model.capacity_max_iter, 10000);
    assertSharedSections(cfg, 10, 'BetaVAE');
    assertNotes(notes, SHARED_NOTES);
  });

  test('bhvae.yaml (BetaVAE, Higgins) loads', () => {
    const { cfg, notes } = load(
      'bhvae.yaml',
      referenceYaml("  name: 'BetaVAE'\n  in_channels: 3\n  latent_dim: 128\n  loss_type: 'H'\n  beta: 10.\n", 10, 'BetaVAE'),
    );
    assert.equal(cfg.model.name, 'beta_vae');
    assert.equal(cfg.model.loss_type, 'H');
    assert.equal(cfg.model.beta, 10);
    assertSharedSections(cfg, 10, 'BetaVAE');
    assertNotes(notes, SHARED_NOTES);
  });

  test("mssim_vae.yaml (MSSIMVAE) loads, with the constructor's window_size and size_average noted", () => {
    const { cfg, notes } = load(
      'mssim_vae.yaml',
      referenceYaml("  name: 'MSSIMVAE'\n  in_channels: 3\n  latent_dim: 128\n  window_size: 11\n  size_average: True\n", 10, 'MSSIMVAE'),
    );
    assert.equal(cfg.model.name, 'mssim_vae');
    assertSharedSections(cfg, 10, 'MSSIMVAE');
    assertNotes(notes, [...SHARED_NOTES, 'model_params.window_size', 'model_params.size_average']);
  });

  test("cvae.yaml (ConditionalVAE) loads; the constructor's img_size yields to patch_size", () => {
    const { cfg, notes } = load(
      'cvae.yaml',
      referenceYaml("  name: 'ConditionalVAE'\n  in_channels: 3\n  num_classes: 40\n  latent_dim: 128\n", 10, 'ConditionalVAE'),
    );
    assert.equal(cfg.model.name, 'cvae');
    assert.equal(cfg.model.num_classes, 40);
    assertSharedSections(cfg, 10, 'ConditionalVAE');
    assertNotes(notes, SHARED_NOTES);
    const sized = load(
      'cvae-img.yaml',
      referenceYaml("  name: 'ConditionalVAE'\n  num_classes: 40\n  img_size: 32\n", 10, 'ConditionalVAE'),
    );
    assert.equal(sized.cfg.model.image_size, 64);
    assert.ok(
      sized.notes.some((n) => n.includes('model_params.img_size 32 ignored: data_params.patch_size sets model.image_size to 64')),
      sized.notes.join('\n'),
    );
  });

  test('joint_vae.yaml (JointVAE) loads: alpha lands in model.alpha, capacities in their lists', () => {
    const model = `  name: 'JointVAE'
  in_channels: 3
  latent_dim: 512
  categorical_dim: 40
  latent_min_capacity: 0.0
  latent_max_capacity: 20.0
  latent_gamma: 10.
  latent_num_iter: 25000
  categorical_min_capacity: 0.0
  categorical_max_capacity: 20.0
  categorical_gamma: 10.
  categorical_num_iter: 25000
  temperature: 0.5
  anneal_rate: 0.00003
  anneal_interval: 100
  alpha: 10.0
`;
    const { cfg, notes } = load('joint_vae.yaml', referenceYaml(model, 10, 'JointVAE'));
    assert.equal(cfg.model.name, 'joint_vae');
    assert.equal(cfg.model.alpha, 10);
    assert.equal(cfg.model.latent_dim, 512);
    assert.equal(cfg.model.categorical_dim, 40);
    assert.deepEqual(cfg.model.cont_capacity, [0, 20, 10, 25000]);
    assert.deepEqual(cfg.model.disc_capacity, [0, 20, 10, 25000]);
    assert.equal(cfg.model.temperature, 0.5);
    assert.equal(cfg.model.min_temperature, DEFAULT_CONFIG.model.min_temperature);
    assert.equal(cfg.model.anneal_rate, 0.00003);
    assert.equal(cfg.model.anneal_steps, 100);
    assertSharedSections(cfg, 10, 'JointVAE');
    assertNotes(notes, SHARED_NOTES);
  });

  test('capacities given in part keep the defaults for the rest', () => {
    const { cfg } = load('joint-part.yaml', "model_params:\n  name: 'JointVAE'\n  latent_min_capacity: 0.0\n  latent_max_capacity: 20.0\n");
    assert.deepEqual(cfg.model.cont_capacity, [0, 20, DEFAULT_CONFIG.model.cont_capacity[2], DEFAULT_CONFIG.model.cont_capacity[3]]);
    assert.deepEqual(cfg.model.disc_capacity, DEFAULT_CONFIG.model.disc_capacity);
  });

  test('a JointVAE start temperature below the default floor lowers the floor, with a note', () => {
    const { cfg, notes } = load('cold.yaml', "model_params:\n  name: 'JointVAE'\n  temperature: 0.1\n");
    assert.equal(cfg.model.temperature, 0.1);
    assert.equal(cfg.model.min_temperature, 0.1);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /model_params\.temperature 0\.1 is below the default model\.min_temperature 0\.2/);
  });

  test('exp_params.manual_seed seeds the run; logging_params.manual_seed alone does too', () => {
    const both = load('seeds.yaml', 'exp_params:\n  manual_seed: 1265\nlogging_params:\n  manual_seed: 7\n');
    assert.equal(both.cfg.train.seed, 1265);
    assertNotes(both.notes, ['logging_params.manual_seed']);
    assert.equal(load('seed-log.yaml', 'logging_params:\n  manual_seed: 7\n').cfg.train.seed, 7);
  });

  test('the pre-2022 layout (data keys in exp_params, max_nb_epochs, seed in logging_params) loads', () => {
    const { cfg, notes } = load(
      'old-vae.yaml',
      `model_params:
  name: 'VanillaVAE'
  in_channels: 3
  latent_dim: 128

exp_params:
  dataset: celeba
  data_path: "../../shared/Data/"
  img_size: 64
  batch_size: 144 # Better to have a square number
  LR: 0.005
  weight_decay: 0.0
  scheduler_gamma: 0.95

trainer_params:
  gpus: 1
  max_nb_epochs: 50
  max_epochs: 30

logging_params:
  save_dir: "logs/"
  name: "VanillaVAE"
  manual_seed: 1265
`,
    );
    assert.equal(cfg.data.path, '../../shared/Data/');
    assert.equal(cfg.model.image_size, 64);
    assert.equal(cfg.train.batch_size, 144);
    assert.equal(cfg.train.epochs, 30);
    assert.equal(cfg.train.seed, 1265);
    assertNotes(notes, ['exp_params.dataset', 'trainer_params.max_nb_epochs', 'trainer_params.gpus']);
  });

  test('a PyTorch-VAE model medvae lacks is one error line listing the ones it has', () => {
    for (const name of ['VQVAE', 'WAE_MMD', 'InfoVAE', 'LogCoshVAE', 'SWAE', 'DFCVAE', 'IWAE', 'toString']) {
      assert.throws(
        () => load(`${name}.yaml`, `model_params:\n  name: '${name}'\n`),
        (e: Error) =>
          e.message.includes(
            `'model_params.name' "${name}" has no medvae counterpart; medvae has VanillaVAE, BetaVAE, MSSIMVAE, ConditionalVAE, JointVAE`,
          ) && !e.message.includes('\n'),
      );
    }
  });

  test('a key no PyTorch-VAE variant here has is still refused, naming the known keys', () => {
    assert.throws(
      () => load('typo-pt.yaml', 'model_params:\n  latent_dims: 128\n'),
      /unsupported key 'model_params\.latent_dims'; known keys of model_params: name, in_channels, latent_dim/,
    );
    assert.throws(() => load('proto-pt.yaml', 'model_params:\n  constructor: 1\n'), /unsupported key 'model_params\.constructor'/);
    assert.throws(
      () => load('section-pt.yaml', 'model_params:\n  latent_dim: 128\noptimizer_params:\n  LR: 0.005\n'),
      /unknown section 'optimizer_params'/,
    );
  });
});
