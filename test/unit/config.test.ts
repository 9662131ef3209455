import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseOverrides } from '../../src/config/load.ts';
import { DEFAULT_CONFIG } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { readRunConfig } from '../../src/run/checkpoint.ts';
import { stringify as stringifyYaml } from 'yaml';

const dir = mkdtempSync(join(tmpdir(), 'medvae-config-'));
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
