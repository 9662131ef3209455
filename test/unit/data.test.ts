// Reading datasets: npy headers and npz archives in every zip variant (and the bundled official
// RetinaMNIST), what a missing dataset path says, data.classes (training on some classes only), the
// distributed sampler, the image transforms and augmentations, and `medvae data download` against a
// local stand-in for zenodo. One process for all, as a process costs about a second to start: each
// describe block below keeps its hooks and state to itself.
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it, mock, test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { DatasetError, DatasetNotFoundError, DownloadError } from '../../src/data/errors.ts';
import { MEDMNIST, medmnistFileName, openMedmnist } from '../../src/data/medmnist.ts';
import { parseNpyHeader } from '../../src/data/npy.ts';
import { NpzArchive } from '../../src/data/npz.ts';
import { openDataset } from '../../src/data/open.ts';
import { downloadCommandFor, missingDatasetAdvice } from '../../src/data/missing.ts';
import { checkPathAdvice, editDistance, similarPaths } from '../../src/util/similar-path.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { filterClasses } from '../../src/data/class-filter.ts';
import { DistributedSampler, epochPermutation } from '../../src/data/sampler.ts';
import {
  augmentChoice,
  type AugmentChoice,
  centerCropSquare,
  NO_AUGMENT,
  type Pixels,
  resize,
  writeNormalized,
} from '../../src/data/transforms.ts';
import { registerDataCommands } from '../../src/cli/data-command.ts';
import { downloadMedmnist } from '../../src/data/download.ts';
import { npyBytes, patternPixels, rgbSplit, writeNpz, zipBytes, type ZipVariant } from '../helpers/data-fixtures.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe('data-npz: npy headers and npz archives', () => {
  let dir: string;
  before(async () => {
    dir = tempDir('medvae-npz-');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('npy header', () => {
    it('reads versions 1, 2 and 3 with the same shape and data offset rule', () => {
      const data = Uint8Array.from({ length: 24 }, (_, i) => i);
      for (const version of [1, 2, 3] as const) {
        const bytes = npyBytes([2, 3, 4], data, { version });
        const header = parseNpyHeader(bytes, 'x.npy');
        assert.deepEqual(header.shape, [2, 3, 4]);
        assert.equal(header.dataBytes, 24);
        assert.equal(header.dataOffset % 64, 0, 'numpy pads headers to 64 bytes');
        assert.deepEqual([...bytes.subarray(header.dataOffset)], [...data]);
      }
    });

    it('reads 1-D shapes written as "(n,)"', () => {
      assert.deepEqual(parseNpyHeader(npyBytes([7], new Uint8Array(7)), 'x').shape, [7]);
    });

    it('rejects Fortran order and unsupported dtypes, naming the member', () => {
      const fortran = npyBytes([2, 2], new Uint8Array(4), { fortran: true });
      assert.throws(() => parseNpyHeader(fortran, 'a.npz[train_images.npy]'), /a\.npz\[train_images\.npy\].*Fortran/);
      const floats = npyBytes([2], new Uint8Array(8), { descr: '<f4' });
      assert.throws(
        () => parseNpyHeader(floats, 'a.npz[val_labels.npy]'),
        (err: Error) => {
          assert.ok(err instanceof DatasetError);
          assert.match(err.message, /a\.npz\[val_labels\.npy\].*unsupported dtype '<f4'/);
          return true;
        },
      );
    });
  });

  describe('npz archives in every zip variant', () => {
    const train = rgbSplit(6, 5, 5);
    const val = rgbSplit(3, 5, 5, 9);
    for (const variant of ['stored', 'deflated', 'zip64'] as ZipVariant[]) {
      it(`reads back exact pixels and labels (${variant})`, async () => {
        const path = join(dir, `retinamnist-${variant}.npz`);
        await writeNpz(path, { train, val }, variant);
        const split = await openMedmnist(path, 'val');
        try {
          assert.equal(split.length, 3);
          assert.deepEqual(split.imageShape, [5, 5, 3]);
          assert.equal(split.labelKind, 'class');
          const images = await split.read([2, 0]);
          const row = 5 * 5 * 3;
          assert.deepEqual([...images[0].data], [...val.images.subarray(2 * row, 3 * row)]);
          assert.deepEqual([...images[1].data], [...val.images.subarray(0, row)]);
          assert.deepEqual(
            (await split.labels()).map((l) => l[0]),
            [0, 1, 2],
          );
        } finally {
          await split.close();
        }
      });
    }

    it('takes zip64 sizes from the central directory, not the 0xFFFFFFFF local header', async () => {
      const path = join(dir, 'z64.npz');
      const bytes = await writeNpz(path, { train }, 'zip64');
      assert.equal(bytes.readUInt32LE(18), 0xffffffff, 'fixture has placeholder local sizes');
      const archive = await NpzArchive.open(path);
      try {
        const entry = archive.entries.get('train_images.npy');
        assert.ok(entry);
        assert.equal(entry.uncompressedSize, npyBytes([6, 5, 5, 3], train.images).length);
        assert.deepEqual(archive.arrayNames(), ['train_images', 'train_labels']);
      } finally {
        await archive.close();
      }
    });

    it('a truncated npz names the member the file ends in and its offset', async () => {
      const path = join(dir, 'truncated.npz');
      const whole = await writeNpz(path, { train, val }, 'deflated');
      // Cut inside the third member (val_images.npy): find its local header offset independently.
      const valOffset = whole.indexOf(Buffer.from('val_images.npy')) - 30;
      await writeFile(path, whole.subarray(0, valOffset + 30 + 14 + 20)); // 20 bytes into its data
      await assert.rejects(openMedmnist(path, 'train'), (err: Error) => {
        assert.ok(err instanceof DatasetError);
        assert.match(err.message, /truncated/);
        assert.match(err.message, new RegExp(`'val_images\\.npy'.*offset ${valOffset}`));
        return true;
      });
    });

    it('corrupt deflate data names the member and the offset of its data', async () => {
      const path = join(dir, 'corrupt.npz');
      const bytes = Buffer.from(await writeNpz(path, { train }, 'deflated'));
      const dataStart = 30 + 'train_images.npy'.length;
      for (let i = 0; i < 40; i++) bytes[dataStart + 10 + i] ^= 0x5a;
      await writeFile(path, bytes);
      await assert.rejects(openMedmnist(path, 'train'), (err: Error) => {
        assert.ok(err instanceof DatasetError);
        assert.match(err.message, new RegExp(`member 'train_images\\.npy'.*offset ${dataStart}`));
        return true;
      });
    });

    it('a missing split lists the splits that exist', async () => {
      const path = join(dir, 'splits.npz');
      await writeNpz(path, { train }, 'stored');
      await assert.rejects(openMedmnist(path, 'test'), /no split 'test'.*splits here: train/);
    });

    it('an image array of floats is refused with the member named', async () => {
      const path = join(dir, 'floats.npz');
      const members = [
        { name: 'train_images.npy', data: npyBytes([1, 2, 2], new Uint8Array(16), { descr: '<f4' }) },
        { name: 'train_labels.npy', data: npyBytes([1, 1], new Uint8Array(1)) },
      ];
      await writeFile(path, zipBytes(members, 'deflated'));
      await assert.rejects(openMedmnist(path, 'train'), /floats\.npz\[train_images\.npy\].*unsupported dtype '<f4'/);
    });

    it('a chestmnist file is multi-label with its 14 findings', async () => {
      const path = join(dir, medmnistFileName('chestmnist', 64));
      assert.equal(path.endsWith('chestmnist_64.npz'), true);
      const labels = new Uint8Array(2 * 14);
      labels[2] = 1; // sample 0: effusion
      labels[14 + 13] = 1; // sample 1: hernia
      await writeNpz(path, { test: { images: new Uint8Array(2 * 4 * 4), imageShape: [2, 4, 4], labels, labelShape: [2, 14] } }, 'stored');
      const split = await openMedmnist(path, 'test');
      try {
        assert.equal(split.labelKind, 'multilabel');
        assert.equal(split.labelWidth, 14);
        assert.equal(split.labelNames[2], 'effusion');
        assert.equal(split.labelNames[12], 'pleural thickening');
        assert.deepEqual(split.imageShape, [4, 4, 1]);
        const rows = await split.labels();
        assert.deepEqual([...rows[1]], [...labels.subarray(14, 28)]);
        assert.equal((await split.read([1]))[0].channels, 1);
      } finally {
        await split.close();
      }
    });
  });

  describe('bundled RetinaMNIST (official file)', () => {
    it('has the official MD5, split sizes, shapes and label counts', async () => {
      const { createHash } = await import('node:crypto');
      const bytes = await readFile('data/retinamnist.npz');
      assert.equal(createHash('md5').update(bytes).digest('hex'), MEDMNIST.retinamnist.md5[28]);
      // Counts and values below were computed with numpy.load on the same file.
      const expected = {
        train: { n: 1080, classes: [486, 128, 206, 194, 66], sum: 172486755 },
        val: { n: 120, classes: [54, 12, 28, 20, 6], sum: 18819325 },
        test: { n: 400, classes: [174, 46, 92, 68, 20], sum: 61494456 },
      };
      for (const [name, want] of Object.entries(expected)) {
        const split = await openMedmnist('data/retinamnist.npz', name);
        try {
          assert.equal(split.length, want.n);
          assert.deepEqual(split.imageShape, [28, 28, 3]);
          assert.equal(split.labelWidth, 5);
          const counts = [0, 0, 0, 0, 0];
          for (const row of await split.labels()) counts[row[0]]++;
          assert.deepEqual(counts, want.classes);
          const images = await split.read(Array.from({ length: want.n }, (_, i) => i));
          assert.equal(
            images.reduce((s, im) => s + im.data.reduce((a, v) => a + v, 0), 0),
            want.sum,
          );
        } finally {
          await split.close();
        }
      }
      const train = await openMedmnist('data/retinamnist.npz', 'train');
      const [first, last] = await train.read([0, 1079]);
      await train.close();
      assert.deepEqual([...first.data.subarray(0, 3)], [2, 0, 6]);
      const at = (14 * 28 + 14) * 3;
      assert.deepEqual([...last.data.subarray(at, at + 3)], [194, 110, 76]);
    });
  });
});

describe('data-paths: a dataset path that is not there', () => {
  // A dataset path that is not there: the message says so first, then what to do: download it when
  // the name is a MedMNIST file (with the real dataset name and size), else check the path, naming a
  // near file beside it or the folder that is missing too. Never a placeholder, never download
  // advice for a typo.

  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'medvae-paths-'));
    writeFileSync(join(dir, 'retinamnist.npz'), 'x');
    writeFileSync(join(dir, 'other.npz'), 'x');
    mkdirSync(join(dir, 'images'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

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
    assert.equal(
      downloadCommandFor('data/chestmnist.npz'),
      'medvae data download chestmnist',
      'data/ is where the download goes by default',
    );
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
});

describe('restore-classes: data.classes, training on some classes only', () => {
  // data.classes: training on some classes only, validated in the config, applied by the data layer.

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
});

describe('data-sampler: the epoch permutation and the distributed sampler', () => {
  const shard = (rank: number, worldSize: number, seed = 42) => ({ seed, rank, worldSize });

  function epochOf(sampler: DistributedSampler, epoch: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < sampler.stepsPerEpoch; s++) out.push(...sampler.indices(epoch, s));
    return out;
  }

  describe('epoch permutation', () => {
    it('is a permutation, stable for (seed, epoch), different across epochs and seeds', () => {
      const p = epochPermutation(1000, 5, 0);
      assert.deepEqual(
        [...p].sort((a, b) => a - b),
        Array.from({ length: 1000 }, (_, i) => i),
      );
      assert.deepEqual([...epochPermutation(1000, 5, 0)], [...p]);
      assert.notDeepEqual([...epochPermutation(1000, 5, 1)], [...p]);
      assert.notDeepEqual([...epochPermutation(1000, 6, 0)], [...p]);
    });
  });

  describe('distributed sampler', () => {
    it('shards of every rank are disjoint and together make the epoch', () => {
      const n = 103;
      const b = 12;
      for (const w of [1, 2, 3, 4]) {
        const all: number[] = [];
        for (let r = 0; r < w; r++) {
          const s = new DistributedSampler({ datasetSize: n, globalBatch: b, shard: shard(r, w), dropLast: true });
          assert.equal(s.stepsPerEpoch, 8);
          assert.equal(s.localBatch, b / w);
          all.push(...epochOf(s, 2));
        }
        assert.equal(new Set(all).size, all.length, `w=${w}: no sample twice`);
        assert.equal(all.length, 96);
        // The union is exactly the first 8 global batches of the permutation.
        assert.deepEqual(
          all.sort((x, y) => x - y),
          [...epochPermutation(n, 42, 2).subarray(0, 96)].sort((x, y) => x - y),
        );
      }
    });

    it('keeps the same global order for world sizes 1 and 2', () => {
      const one = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(0, 1), dropLast: true });
      const r0 = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(0, 2), dropLast: true });
      const r1 = new DistributedSampler({ datasetSize: 50, globalBatch: 8, shard: shard(1, 2), dropLast: true });
      for (let step = 0; step < one.stepsPerEpoch; step++) {
        assert.deepEqual([...one.indices(1, step)], [...r0.indices(1, step), ...r1.indices(1, step)]);
      }
    });

    it('is stable across runs and differs across epochs', () => {
      const make = () => new DistributedSampler({ datasetSize: 64, globalBatch: 16, shard: shard(1, 4), dropLast: true });
      assert.deepEqual(epochOf(make(), 0), epochOf(make(), 0));
      assert.notDeepEqual(epochOf(make(), 0), epochOf(make(), 1));
    });

    it('drop_last=false pads the last global batch by wrapping to the start of the permutation', () => {
      const n = 10;
      const s = new DistributedSampler({ datasetSize: n, globalBatch: 4, shard: shard(0, 1), dropLast: false });
      assert.equal(s.stepsPerEpoch, 3);
      const perm = epochPermutation(n, 42, 0);
      assert.deepEqual([...s.indices(0, 2)], [perm[8], perm[9], perm[0], perm[1]]);
      assert.deepEqual(new Set(epochOf(s, 0)).size, n, 'every sample at least once');
      const dropped = new DistributedSampler({ datasetSize: n, globalBatch: 4, shard: shard(0, 1), dropLast: true });
      assert.equal(dropped.stepsPerEpoch, 2);
    });

    it('requires the global batch to divide among the ranks and a valid rank', () => {
      assert.throws(
        () => new DistributedSampler({ datasetSize: 10, globalBatch: 6, shard: shard(0, 4), dropLast: true }),
        /not divisible by world size 4/,
      );
      assert.throws(
        () => new DistributedSampler({ datasetSize: 10, globalBatch: 4, shard: shard(2, 2), dropLast: true }),
        /rank 2 outside 0\.\.1/,
      );
      const s = new DistributedSampler({ datasetSize: 10, globalBatch: 4, shard: shard(0, 2), dropLast: true });
      assert.throws(() => s.indices(0, 2), /step 2 outside 0\.\.1/);
    });
  });
});

describe('data-transforms: resize, crop, normalisation and augmentation', () => {
  const grey = (side: number, values: number[]): Pixels => ({
    data: Uint8Array.from(values),
    height: side,
    width: side,
    channels: 1,
  });

  function close(actual: ArrayLike<number>, expected: number[], tol = 1e-5): void {
    assert.equal(actual.length, expected.length);
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `element ${i}: ${actual[i]} != ${expected[i]}`);
    }
  }

  /** Normalise a grey 2x2 with a choice and map back to 0..255 for readable expectations. */
  function augmented(values: number[], choice: AugmentChoice): number[] {
    const out = new Float32Array(4);
    writeNormalized(grey(2, values), 1, choice, out, 0);
    return [...out].map((v) => Math.round((v + 1) * 127.5));
  }

  describe('resize', () => {
    const ramp = Array.from({ length: 16 }, (_, i) => i);

    it('area 4x4 -> 2x2 averages each 2x2 block', () => {
      close(resize(grey(4, ramp), 2, 2, 'area').data, [2.5, 4.5, 10.5, 12.5]);
    });

    it('area 3x3 -> 2x2 averages the overlapping boxes (adaptive average pooling)', () => {
      // Output row 0 covers source rows 0..1, row 1 covers rows 1..2 (floor/ceil of i*3/2).
      close(resize(grey(3, [0, 1, 2, 3, 4, 5, 6, 7, 8]), 2, 2, 'area').data, [2, 3, 5, 6]);
    });

    it('bilinear 2x2 -> 4x4 matches half-pixel interpolation (align_corners=false)', () => {
      const out = resize(grey(2, [0, 10, 20, 30]), 4, 4, 'bilinear').data;
      close(out, [0, 2.5, 7.5, 10, 5, 7.5, 12.5, 15, 15, 17.5, 22.5, 25, 20, 22.5, 27.5, 30]);
    });

    it('bilinear 4x4 -> 2x2 samples between source pixels', () => {
      close(resize(grey(4, ramp), 2, 2, 'bilinear').data, [2.5, 4.5, 10.5, 12.5]);
    });

    it('keeps channels apart and returns the input when the size already matches', () => {
      const rgb: Pixels = {
        data: Uint8Array.from([0, 100, 200, 10, 110, 210, 20, 120, 220, 30, 130, 230]),
        height: 2,
        width: 2,
        channels: 3,
      };
      close(resize(rgb, 1, 1, 'area').data, [15, 115, 215]);
      assert.equal(resize(rgb, 2, 2, 'bilinear'), rgb);
    });
  });

  describe('centre crop', () => {
    it('takes the middle square of a wide image', () => {
      const wide: Pixels = { data: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]), height: 2, width: 4, channels: 1 };
      const sq = centerCropSquare(wide);
      assert.deepEqual([sq.height, sq.width], [2, 2]);
      assert.deepEqual([...sq.data], [1, 2, 5, 6]);
    });
  });

  describe('normalise, channels, flips and rotations', () => {
    it('maps 0..255 to [-1, 1] with mean 0.5 and std 0.5', () => {
      const out = new Float32Array(4);
      writeNormalized(grey(2, [0, 255, 51, 102]), 1, NO_AUGMENT, out, 0);
      close(out, [-1, 1, -0.6, -0.2]);
    });

    it('replicates grey into RGB and takes ITU-R 601 luma from RGB', () => {
      const toRgb = new Float32Array(3);
      writeNormalized(grey(1, [255]), 3, NO_AUGMENT, toRgb, 0);
      close(toRgb, [1, 1, 1]);
      const toGrey = new Float32Array(1);
      writeNormalized({ data: Uint8Array.from([200, 100, 50]), height: 1, width: 1, channels: 3 }, 1, NO_AUGMENT, toGrey, 0);
      close(toGrey, [(0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 127.5 - 1]);
    });

    it('writes at the given offset and leaves the rest alone', () => {
      const out = new Float32Array(6).fill(9);
      writeNormalized(grey(1, [255]), 1, NO_AUGMENT, out, 4);
      assert.deepEqual([...out], [9, 9, 9, 9, 1, 9]);
    });

    it('flips and quarter-turns like numpy (fliplr, flipud, rot90 counter-clockwise)', () => {
      const a = [1, 2, 3, 4]; // [[1, 2], [3, 4]]
      assert.deepEqual(augmented(a, { flipH: true, flipV: false, rot90: 0 }), [2, 1, 4, 3]);
      assert.deepEqual(augmented(a, { flipH: false, flipV: true, rot90: 0 }), [3, 4, 1, 2]);
      assert.deepEqual(augmented(a, { flipH: false, flipV: false, rot90: 1 }), [2, 4, 1, 3]);
      assert.deepEqual(augmented(a, { flipH: false, flipV: false, rot90: 2 }), [4, 3, 2, 1]);
      assert.deepEqual(augmented(a, { flipH: false, flipV: false, rot90: 3 }), [3, 1, 4, 2]);
      // Flips first, then the rotation: rot90(fliplr(a)).
      assert.deepEqual(augmented(a, { flipH: true, flipV: false, rot90: 1 }), [1, 3, 2, 4]);
    });
  });

  describe('augmentation choices', () => {
    const both = { flip: true, rot90: true };

    it('are a pure function of (seed, epoch, index)', () => {
      for (let i = 0; i < 50; i++) assert.deepEqual(augmentChoice(7, 3, i, both), augmentChoice(7, 3, i, both));
      const seq = (seed: number, epoch: number) =>
        Array.from({ length: 64 }, (_, i) => JSON.stringify(augmentChoice(seed, epoch, i, both)));
      assert.notDeepEqual(seq(7, 3), seq(7, 4));
      assert.notDeepEqual(seq(7, 3), seq(8, 3));
    });

    it('cover all 16 flip/rotation combinations and respect what is switched off', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 400; i++) seen.add(JSON.stringify(augmentChoice(1, 0, i, both)));
      assert.equal(seen.size, 16);
      for (let i = 0; i < 100; i++) {
        assert.deepEqual(augmentChoice(1, 0, i, { flip: false, rot90: false }), NO_AUGMENT);
        const flipOnly = augmentChoice(1, 0, i, { flip: true, rot90: false });
        const full = augmentChoice(1, 0, i, both);
        assert.equal(flipOnly.rot90, 0);
        assert.deepEqual([flipOnly.flipH, flipOnly.flipV], [full.flipH, full.flipV]);
      }
    });
  });
});

describe('data-download: medvae data download against a local zenodo', () => {
  // A local stand-in for zenodo, serving the bundled official retinamnist.npz:
  //   /good/...     honours Range requests (206)
  //   /norange/...  ignores Range (always 200 with the whole file)
  //   /corrupt/...  serves the file with one byte changed
  // and 404 for any other file.
  let official: Buffer;
  let server: Server;
  let base: string;
  let dir: string;
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];

  before(async () => {
    official = await readFile('data/retinamnist.npz');
    server = createServer((req, res) => {
      requests.push({ url: req.url ?? '', headers: req.headers });
      const [, mode, file] = /^\/(\w+)\/([^?]+)/.exec(req.url ?? '') ?? [];
      if (file !== 'retinamnist.npz') {
        res.writeHead(404).end('not found');
        return;
      }
      let body = official;
      if (mode === 'corrupt') {
        body = Buffer.from(official);
        body[1000] ^= 0xff;
      }
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (range && mode === 'good') {
        const from = Number(range[1]);
        if (from >= body.length) {
          res.writeHead(416).end();
          return;
        }
        res.writeHead(206, { 'Content-Range': `bytes ${from}-${body.length - 1}/${body.length}`, 'Content-Length': body.length - from });
        res.end(body.subarray(from));
        return;
      }
      res.writeHead(200, { 'Content-Length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    delete process.env.MEDVAE_MEDMNIST_URL;
  });

  beforeEach(async () => {
    dir = tempDir('medvae-download-');
    requests.length = 0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
  const exists = (p: string): Promise<boolean> =>
    stat(p).then(
      () => true,
      () => false,
    );

  describe('medvae data download', () => {
    it('downloads, verifies the MD5 and renames into place; a second call does not fetch again', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
      const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
      assert.equal(path, join(dir, 'retinamnist.npz'));
      assert.equal(md5(await readFile(path)), 'bd4c0672f1bba3e3a89f0e4e876791e4');
      assert.equal(await exists(`${path}.part`), false);
      assert.equal(requests[0].url, '/good/retinamnist.npz?download=1');
      const lines: string[] = [];
      await downloadMedmnist({ flag: 'retinamnist', size: 28, dir, log: (l) => lines.push(l) });
      assert.equal(requests.length, 1);
      assert.match(lines[0], /already present/);
    });

    it('resumes a partial download with a Range request', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
      const part = join(dir, 'retinamnist.npz.part');
      await writeFile(part, official.subarray(0, 1_000_000));
      const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
      assert.equal(requests.length, 1);
      assert.equal(requests[0].headers.range, 'bytes=1000000-');
      assert.ok((await readFile(path)).equals(official));
    });

    it('starts over when the server ignores the Range request', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/norange`;
      await writeFile(join(dir, 'retinamnist.npz.part'), 'stale bytes from another file');
      const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
      assert.equal(requests[0].headers.range, 'bytes=29-');
      assert.ok((await readFile(path)).equals(official));
    });

    it('a wrong MD5 fails and leaves neither the file nor the part in place', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/corrupt`;
      await assert.rejects(downloadMedmnist({ flag: 'retinamnist', size: 28, dir }), (err: Error) => {
        assert.ok(err instanceof DownloadError);
        assert.match(err.message, /MD5 [0-9a-f]{32} does not match the published bd4c0672f1bba3e3a89f0e4e876791e4/);
        return true;
      });
      assert.equal(await exists(join(dir, 'retinamnist.npz')), false);
      assert.equal(await exists(join(dir, 'retinamnist.npz.part')), false);
    });

    it('an HTTP 404 is reported with the URL and nothing is written', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
      await assert.rejects(
        downloadMedmnist({ flag: 'pathmnist', size: 64, dir }),
        /GET http:\/\/127\.0\.0\.1:\d+\/good\/pathmnist_64\.npz\?download=1 failed: HTTP 404/,
      );
      assert.equal(await exists(join(dir, 'pathmnist_64.npz')), false);
      assert.equal(await exists(join(dir, 'pathmnist_64.npz.part')), false);
    });

    it('refuses unknown flags and sizes before any request', async () => {
      await assert.rejects(downloadMedmnist({ flag: 'brainmnist', size: 28, dir }), /unknown MedMNIST flag 'brainmnist'.*retinamnist/);
      await assert.rejects(downloadMedmnist({ flag: 'chestmnist', size: 32, dir }), /size 32 is not one of 28, 64, 128, 224/);
      assert.equal(requests.length, 0);
    });
  });

  describe('data CLI commands', () => {
    it('`data download` and `data info` run through commander', async () => {
      process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
      const printed: string[] = [];
      const log = mock.method(console, 'log', (line: string) => printed.push(line));
      const error = mock.method(console, 'error', () => undefined);
      try {
        const program = new Command('medvae').exitOverride();
        registerDataCommands(program);
        await program.parseAsync(['data', 'download', 'retinamnist', '--dir', dir], { from: 'user' });
        assert.equal(printed[0], join(dir, 'retinamnist.npz'));
        await program.parseAsync(['data', 'info', join(dir, 'retinamnist.npz')], { from: 'user' });
        assert.match(printed[1], /train: 1080 samples, image 28 x 28 x 3, labels: class/);
        assert.match(printed[1], /grade 0 +486 +45\.0%/);
        assert.match(printed[1], /test: 400 samples/);
      } finally {
        log.mock.restore();
        error.mock.restore();
      }
    });
  });
});
