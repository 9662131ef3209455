// data.classes: training on some classes only, validated in the config, applied by the data layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { filterClasses } from '../../src/data/class-filter.ts';
import { DatasetError } from '../../src/data/errors.ts';
import { openDataset } from '../../src/data/open.ts';
import { patternPixels, writeNpz } from '../helpers/data-fixtures.ts';
import { tempDir } from '../helpers/temp-dir.ts';

async function labelledNpz(): Promise<string> {
  const path = join(tempDir('medvae-classes-'), 'tiny.npz');
  const labels = Uint8Array.from([0, 1, 2, 0, 1, 0]);
  await writeNpz(path, { train: { images: patternPixels(6, 4, 1), imageShape: [6, 4, 4], labels, labelShape: [6, 1] } }, 'stored');
  return path;
}

test('data.classes is a list of class indices, [] by default', () => {
  assert.deepEqual(loadConfig().data.classes, []);
  assert.deepEqual(loadConfig({ sets: ['data.classes=[0, 2]'] }).data.classes, [0, 2]);
  assert.throws(
    () => loadConfig({ sets: ['data.classes=[-1]'] }),
    (e: unknown) => e instanceof ConfigError && /data\.classes/.test(e.message),
  );
  assert.throws(() => loadConfig({ sets: ['data.classes=[0.5]'] }), ConfigError);
});

test('filterClasses keeps the listed classes, in order, and reads their images', async () => {
  const path = await labelledNpz();
  const all = await openDataset({ format: 'medmnist', path }, 'train');
  const zero = await filterClasses(all, [0]);
  assert.equal(zero.length, 3);
  assert.deepEqual(
    (await zero.labels()).map((r) => r[0]),
    [0, 0, 0],
  );
  const [a] = await zero.read([1]);
  const [b] = await all.read([3]);
  assert.deepEqual(a!.data, b!.data);
  assert.equal(await filterClasses(all, []), all);
  await assert.rejects(filterClasses(all, [0, 7]), (e: unknown) => e instanceof DatasetError && /class\(es\) 7/.test(e.message));
  await zero.close();
});
