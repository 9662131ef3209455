import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DatasetError } from '../../src/data/errors.ts';
import { MEDMNIST, medmnistFileName, openMedmnist } from '../../src/data/medmnist.ts';
import { parseNpyHeader } from '../../src/data/npy.ts';
import { NpzArchive } from '../../src/data/npz.ts';
import { npyBytes, rgbSplit, writeNpz, zipBytes, type ZipVariant } from '../helpers/data-fixtures.ts';
import { tempDir } from '../helpers/temp-dir.ts';

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
