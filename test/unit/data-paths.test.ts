// A dataset path that is not there: the message says so first, then what to do: download it when
// the name is a MedMNIST file (with the real dataset name and size), else check the path, naming a
// near file beside it or the folder that is missing too. Never a placeholder, never download
// advice for a typo.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetNotFoundError } from '../../src/data/errors.ts';
import { openDataset } from '../../src/data/open.ts';
import { downloadCommandFor, missingDatasetAdvice } from '../../src/data/missing.ts';
import { checkPathAdvice, editDistance, similarPaths } from '../../src/util/similar-path.ts';

const dir = mkdtempSync(join(tmpdir(), 'medvae-paths-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'retinamnist.npz'), 'x');
writeFileSync(join(dir, 'other.npz'), 'x');
mkdirSync(join(dir, 'images'));

async function notFound(path: string, format: 'medmnist' | 'folder' | 'gleason' = 'medmnist'): Promise<string> {
  const e = await openDataset({ format, path }, 'train').then(
    () => assert.fail(`${path} opened`),
    (err: unknown) => err,
  );
  assert.ok(e instanceof DatasetNotFoundError, String(e));
  return e.message;
}

test('a path that is not there and names no dataset: "does not exist", check the path, no download advice', async () => {
  const m = await notFound('/nonexistent.npz');
  assert.equal(m, '/nonexistent.npz does not exist; check the path');
  for (const format of ['folder', 'gleason'] as const) {
    assert.equal(await notFound(join(dir, 'nothing-here'), format), `${join(dir, 'nothing-here')} does not exist; check the path`);
  }
  assert.equal(
    await notFound(join(dir, 'no', 'such', 'x.npz')),
    `${join(dir, 'no', 'such', 'x.npz')} does not exist; check the path: the folder ${join(dir, 'no')} does not exist either`,
  );
});

test('a typo names the near file beside it', async () => {
  assert.equal(
    await notFound(join(dir, 'retinamnst.npz')),
    `${join(dir, 'retinamnst.npz')} does not exist; did you mean ${join(dir, 'retinamnist.npz')}?`,
  );
  assert.match(await notFound(join(dir, 'retinamnist')), /did you mean .*retinamnist\.npz\?$/, 'the extension left out');
  assert.match(await notFound(join(dir, 'image'), 'folder'), /did you mean .*images\?$/);
  // The bundled data/ folder is looked up under the package root from any working directory.
  assert.deepEqual(similarPaths('data/retinamnist.np'), ['data/retinamnist.npz']);
  assert.equal(checkPathAdvice(join(dir, 'completely-different.npz')), 'check the path');
});

test('a MedMNIST file name gets the download command with its real name, size and folder', async () => {
  const chest = join(dir, 'chestmnist.npz');
  assert.equal(await notFound(chest), `${chest} does not exist; download it with \`medvae data download chestmnist --dir ${dir}\``);
  assert.equal(downloadCommandFor('data/chestmnist.npz'), 'medvae data download chestmnist', 'data/ is where the download goes by default');
  assert.equal(downloadCommandFor('data/pathmnist_64.npz'), 'medvae data download pathmnist --size 64');
  assert.equal(downloadCommandFor('./data/pathmnist_224.npz'), 'medvae data download pathmnist --size 224');
  assert.equal(downloadCommandFor('/srv/medmnist/octmnist_128.npz'), 'medvae data download octmnist --size 128 --dir /srv/medmnist');
  assert.equal(downloadCommandFor('/my data/bloodmnist.npz'), "medvae data download bloodmnist --dir '/my data'");
  for (const notMedmnist of ['data/chestmnist_32.npz', 'data/ChestMNIST.npz', 'data/mydata.npz', 'data/chestmnist']) {
    assert.equal(downloadCommandFor(notMedmnist), undefined, notMedmnist);
  }
  assert.doesNotMatch(missingDatasetAdvice('data/retinamnst.npz'), /download/);
});

test('edit distance counts a swap of neighbours as one edit', () => {
  assert.equal(editDistance('retinamnist', 'retinamnist'), 0);
  assert.equal(editDistance('retinamnst', 'retinamnist'), 1);
  assert.equal(editDistance('rteinamnist', 'retinamnist'), 1);
  assert.equal(editDistance('', 'abc'), 3);
});
