// How many threads the native backend computes with: every core for one process, the cores shared
// among medvae-dist's workers on one machine, what was asked for when asked (with a warning when it
// oversubscribes), and train.threads / --threads reaching the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oversubscription, resolveThreads } from '../../src/backend/native/threads.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { configFromFlags } from '../../src/cli/train-options.ts';

test('threads: every core for one process, shared among local workers, as asked when asked', () => {
  assert.equal(resolveThreads(0, 8, 1), 8);
  assert.equal(resolveThreads(undefined, 8, 1), 8);
  assert.equal(resolveThreads(0, 8, 2), 4);
  assert.equal(resolveThreads(0, 8, 3), 2);
  assert.equal(resolveThreads(0, 2, 4), 1, 'never fewer than one');
  assert.equal(resolveThreads(3, 2, 2), 3, 'asked for: kept');
  assert.equal(resolveThreads(0, 8, Number.NaN), 8, 'an unreadable worker count counts as one');
});

test('threads: asking for more than the cores warns in one line naming the key', () => {
  assert.equal(oversubscription(0, 4, 2), undefined);
  assert.equal(oversubscription(1, 2, 2), undefined);
  const warning = oversubscription(2, 2, 2);
  assert.ok(warning);
  assert.match(warning, /^warning: train\.threads=2 x 2 workers = 4 threads on 2 cores/);
  assert.doesNotMatch(warning, /\n/);
});

test('train.threads: 0 by default, set by --threads, refused when negative', () => {
  assert.equal(loadConfig({ sets: [] }).train.threads, 0);
  const cfg = configFromFlags({ set: [], threads: '3', backend: 'native', logFormat: 'plain' });
  assert.equal(cfg.train.threads, 3);
  assert.equal(cfg.train.backend, 'native');
  assert.throws(
    () => loadConfig({ sets: ['train.threads=-1'] }),
    (e: unknown) => e instanceof ConfigError && /train\.threads/.test(e.message),
  );
});
