import assert from 'node:assert/strict';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { CorruptImageError, DatasetError, DatasetNotFoundError } from '../../src/data/errors.ts';
import { createLoader, type LoaderOptions } from '../../src/data/loader.ts';
import { openDataset } from '../../src/data/open.ts';
import type { Batch, DatasetSplit, RawImage, SampleRecord } from '../../src/data/types.ts';
import { jpegOf, rgbSplit, syntheticRgb, writeGleasonTree, writeNpz } from '../helpers/data-fixtures.ts';
import { tempDir } from '../helpers/temp-dir.ts';

let dir: string;
let npzPath: string;
const train = rgbSplit(40, 6, 5);

before(async () => {
  dir = tempDir('medvae-loader-');
  npzPath = join(dir, 'retinamnist.npz');
  await writeNpz(npzPath, { train }, 'deflated');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(split: DatasetSplit, over: Partial<LoaderOptions> = {}): LoaderOptions {
  return {
    split,
    imageSize: 6,
    channels: 3,
    resize: 'bilinear',
    augment: { flip: false, rot90: false },
    globalBatch: 8,
    shard: { seed: 11, rank: 0, worldSize: 1 },
    dropLast: true,
    threads: 0,
    prefetch: 2,
    strict: false,
    ...over,
  };
}

async function collect(opts: LoaderOptions, epoch = 0, fromStep?: number): Promise<Batch[]> {
  const loader = createLoader(opts);
  try {
    const out: Batch[] = [];
    for await (const b of loader.batches(epoch, fromStep)) out.push(b);
    return out;
  } finally {
    await loader.close();
  }
}

describe('loader over a MedMNIST npz', () => {
  it('yields normalised pixels and one-hot labels of the sampled indices', async () => {
    const split = await openDataset({ format: 'medmnist', path: npzPath }, 'train');
    try {
      const batches = await collect(options(split));
      assert.equal(batches.length, 5);
      const row = 6 * 6 * 3;
      const seen = new Set<number>();
      for (const b of batches) {
        assert.equal(b.n, 8);
        assert.equal(b.labelWidth, 5);
        b.indices.forEach((index, i) => {
          seen.add(index);
          const expected = [...train.images.subarray(index * row, (index + 1) * row)].map((v) => v / 127.5 - 1);
          const got = b.images.subarray(i * row, (i + 1) * row);
          for (let k = 0; k < row; k++) assert.ok(Math.abs(got[k] - expected[k]) < 1e-6);
          const oneHot = [0, 0, 0, 0, 0];
          oneHot[index % 5] = 1;
          assert.deepEqual([...b.labels.subarray(i * 5, (i + 1) * 5)], oneHot);
        });
      }
      assert.equal(seen.size, 40, 'an epoch of 40 with batch 8 reads every sample once');
    } finally {
      await split.close();
    }
  });

  it('gives identical batches with 0 and 2 decode threads (augmentation keyed by sample, not thread)', async () => {
    const split = await openDataset({ format: 'medmnist', path: npzPath }, 'train');
    try {
      const common = { imageSize: 8, channels: 1 as const, augment: { flip: true, rot90: true } };
      const inline = await collect(options(split, { ...common, threads: 0 }), 3);
      const pooled = await collect(options(split, { ...common, threads: 2, prefetch: 3 }), 3);
      assert.equal(pooled.length, inline.length);
      for (let s = 0; s < inline.length; s++) {
        assert.deepEqual([...pooled[s].indices], [...inline[s].indices]);
        assert.deepEqual(pooled[s].images, inline[s].images);
        assert.equal(pooled[s].images.length, 8 * 8 * 8);
      }
    } finally {
      await split.close();
    }
  });

  it('two ranks together read exactly the global batch of one rank; resume from a step', async () => {
    const split = await openDataset({ format: 'medmnist', path: npzPath }, 'train');
    try {
      const whole = await collect(options(split), 1);
      const r0 = await collect(options(split, { shard: { seed: 11, rank: 0, worldSize: 2 } }), 1);
      const r1 = await collect(options(split, { shard: { seed: 11, rank: 1, worldSize: 2 } }), 1);
      for (let s = 0; s < whole.length; s++) {
        assert.equal(r0[s].n, 4);
        assert.deepEqual([...r0[s].indices, ...r1[s].indices], [...whole[s].indices]);
        assert.deepEqual([...r0[s].images, ...r1[s].images], [...whole[s].images]);
      }
      const resumed = await collect(options(split), 1, 3);
      assert.equal(resumed.length, 2);
      assert.deepEqual(resumed[0].indices, whole[3].indices);
    } finally {
      await split.close();
    }
  });

  it('decodes at most `prefetch` batches ahead of the consumer', async () => {
    let requested = 0;
    const image: RawImage = { data: new Uint8Array(4 * 4 * 3), height: 4, width: 4, channels: 3 };
    const split: DatasetSplit = {
      description: 'counting[train]',
      length: 100,
      labelKind: 'none',
      labelWidth: 0,
      labelNames: [],
      labels: async () => Array.from({ length: 100 }, () => new Uint8Array(0)),
      read: async (indices) => indices.map(() => image),
      records: async (indices): Promise<SampleRecord[]> => {
        requested++;
        return indices.map(() => ({ kind: 'pixels', image: { ...image, data: new Uint8Array(image.data) } }));
      },
      close: async () => undefined,
    };
    const loader = createLoader(options(split, { imageSize: 4, globalBatch: 4, prefetch: 3 }));
    const iterator = loader.batches(0)[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal(first.done, false);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(requested <= 4, `requested ${requested} batches after consuming 1 with prefetch 3`);
    assert.ok(requested >= 3, 'the queue is kept full');
    await iterator.return?.(undefined);
    await loader.close();
    assert.equal(loader.stepsPerEpoch, 25);
    assert.equal(first.value.labels.length, 0);
  });

  it('a split without records() keeps its own buffers when a decode thread reads them', async () => {
    const shared: RawImage = { data: Uint8Array.from({ length: 2 * 2 * 3 }, (_, i) => i * 20), height: 2, width: 2, channels: 3 };
    const split: DatasetSplit = {
      description: 'shared[train]',
      length: 8,
      labelKind: 'none',
      labelWidth: 0,
      labelNames: [],
      labels: async () => Array.from({ length: 8 }, () => new Uint8Array(0)),
      read: async (indices) => indices.map(() => shared),
      close: async () => undefined,
    };
    const batches = await collect(options(split, { imageSize: 2, globalBatch: 4, threads: 1 }));
    assert.equal(batches.length, 2);
    assert.equal(shared.data.byteLength, 12, 'not transferred away');
    assert.deepEqual(
      [...batches[1].images.subarray(0, 12)].map((v) => Math.round((v + 1) * 127.5)),
      [...shared.data],
    );
  });

  it('an empty split or one smaller than a global batch is refused with a message', async () => {
    const empty: DatasetSplit = {
      description: 'empty[train]',
      length: 0,
      labelKind: 'none',
      labelWidth: 0,
      labelNames: [],
      labels: async () => [],
      read: async () => [],
      close: async () => undefined,
    };
    assert.throws(() => createLoader(options(empty)), /empty\[train\]: empty dataset/);
    const split = await openDataset({ format: 'medmnist', path: npzPath }, 'train');
    assert.throws(() => createLoader(options(split, { globalBatch: 64 })), /40 samples make no full global batch of 64/);
    await split.close();
  });
});

describe('Gleason layout', () => {
  let root: string;
  before(async () => {
    root = join(dir, 'gleason');
    await writeGleasonTree(root, { train: 12, test: 4 });
  });

  it('indexes the CSV, decodes JPEGs close to their source and labels by class', async () => {
    const split = await openDataset({ format: 'gleason', path: root }, 'train');
    assert.equal(split.length, 12);
    assert.equal(split.labelWidth, 4);
    assert.deepEqual(split.labelNames, ['stroma/benign', 'Gleason 3', 'Gleason 4', 'Gleason 5']);
    const batches = await collect(options(split, { imageSize: 32, globalBatch: 4, threads: 1 }));
    assert.equal(batches.length, 3);
    for (const b of batches) {
      b.indices.forEach((index, i) => {
        assert.equal(b.labels[i * 4 + (index % 4)], 1);
        const source = syntheticRgb(32, index);
        const got = b.images.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3);
        let err = 0;
        for (let k = 0; k < got.length; k++) err += Math.abs((got[k] + 1) * 127.5 - source[k]);
        assert.ok(err / got.length < 6, `JPEG round trip error ${err / got.length} too large for sample ${index}`);
      });
    }
    const test = await openDataset({ format: 'gleason', path: root }, 'test');
    assert.equal(test.length, 4);
  });

  it('a corrupt JPEG is skipped with one warning and counted; strict makes it fatal', async () => {
    const bad = join(dir, 'gleason-bad');
    await writeGleasonTree(bad, { train: 8, test: 1 });
    const good = await jpegOf(syntheticRgb(32, 3), 32);
    await writeFile(join(bad, 'train', 'biopsy0_3.jpeg'), good.subarray(0, good.length >> 1));
    const split = await openDataset({ format: 'gleason', path: bad }, 'train');
    const warnings: string[] = [];
    const loader = createLoader(options(split, { imageSize: 32, globalBatch: 4, log: (l) => warnings.push(l) }));
    for (const epoch of [0, 1]) {
      for await (const b of loader.batches(epoch)) {
        assert.equal(b.n, 4);
        assert.ok(!b.indices.includes(3), 'the bad sample is replaced by another of its batch');
      }
    }
    assert.equal(loader.skipped, 1);
    assert.equal(warnings.length, 1, 'warned once, not once per epoch');
    assert.match(warnings[0], /skipped sample 3: .*biopsy0_3\.jpeg/);
    await loader.close();

    const strict = createLoader(options(split, { imageSize: 32, globalBatch: 4, strict: true }));
    await assert.rejects(
      async () => {
        for await (const b of strict.batches(0)) assert.ok(b);
      },
      (err: Error) => err instanceof CorruptImageError && /biopsy0_3\.jpeg.*strict/.test(err.message),
    );
    await strict.close();
  });

  it('rows whose files are missing are listed, the first few by name', async () => {
    const holes = join(dir, 'gleason-holes');
    await writeGleasonTree(holes, { train: 10, test: 1 });
    for (const i of [0, 2, 4, 5, 6, 8, 9]) await unlink(join(holes, 'train', `biopsy${Math.floor(i / 5)}_${i}.jpeg`));
    await assert.rejects(openDataset({ format: 'gleason', path: holes }, 'train'), (err: Error) => {
      assert.ok(err instanceof DatasetError);
      assert.match(
        err.message,
        /train\.csv: 7 listed image\(s\) missing .*biopsy0_0\.jpeg, biopsy0_2\.jpeg, biopsy0_4\.jpeg, biopsy1_5\.jpeg, biopsy1_6\.jpeg and 2 more/,
      );
      return true;
    });
  });

  it('a CSV without rows is an empty dataset', async () => {
    const empty = join(dir, 'gleason-empty');
    await mkdir(join(empty, 'train'), { recursive: true });
    await writeFile(join(empty, 'train.csv'), 'image,height_biopsy,width_biopsy,class\n');
    await assert.rejects(openDataset({ format: 'gleason', path: empty }, 'train'), /empty dataset/);
  });
});

describe('image folders and missing paths', () => {
  it('class sub-folders sorted by name become labels; a flat folder is unlabelled', async () => {
    const root = join(dir, 'folder');
    await mkdir(join(root, 'tumour'), { recursive: true });
    await mkdir(join(root, 'normal', 'nested'), { recursive: true });
    const raw = syntheticRgb(8, 1);
    await writeFile(
      join(root, 'tumour', 'a.png'),
      await sharp(raw, { raw: { width: 8, height: 8, channels: 3 } })
        .png()
        .toBuffer(),
    );
    await writeFile(join(root, 'normal', 'b.jpg'), await jpegOf(raw, 8));
    await writeFile(join(root, 'normal', 'nested', 'c.JPEG'), await jpegOf(raw, 8));
    await writeFile(join(root, 'normal', 'notes.txt'), 'not an image');
    const split = await openDataset({ format: 'folder', path: root }, 'train');
    assert.deepEqual(split.labelNames, ['normal', 'tumour']);
    assert.deepEqual(
      (await split.labels()).map((l) => l[0]),
      [0, 0, 1],
    );
    const [png] = await split.read([2]);
    assert.deepEqual([png.height, png.width, png.channels], [8, 8, 3]);
    assert.deepEqual([...png.data], [...raw], 'PNG is lossless');

    const flat = await openDataset({ format: 'folder', path: join(root, 'tumour') }, 'train');
    assert.equal(flat.labelKind, 'none');
    assert.equal(flat.length, 1);

    const none = join(dir, 'no-images');
    await mkdir(none, { recursive: true });
    await assert.rejects(openDataset({ format: 'folder', path: none }, 'train'), /empty dataset: no PNG\/JPEG images/);
  });

  it('a missing path names it and suggests `medvae data download`', async () => {
    const missing = join(dir, 'nope', 'chestmnist.npz');
    await assert.rejects(openDataset({ format: 'medmnist', path: missing }, 'train'), (err: Error) => {
      assert.ok(err instanceof DatasetNotFoundError);
      assert.ok(err.message.includes(missing));
      assert.match(err.message, /medvae data download/);
      return true;
    });
  });
});
