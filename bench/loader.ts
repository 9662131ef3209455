// Loader throughput and memory:
//   node --import tsx bench/loader.ts --dataset gleason --root DIR --size 256 --batch 64 --threads 2 [--make-synthetic N] [--steps K]
// prints one JSON line {"dataset","image_size","batch","threads","images_per_s","peak_rss_mb","n_images"}.
// --make-synthetic N first writes N synthetic 256x256 JPEG patches in the Gleason layout under
// --root (in a child process, so its memory does not count towards peak_rss_mb).
// Throughput is timed from the first batch's arrival to the last (thread start-up excluded).
import { fork } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { DatasetFormat } from '../src/config/schema.ts';
import { createLoader } from '../src/data/loader.ts';
import { openDataset } from '../src/data/open.ts';

const { values: args } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'gleason' },
    root: { type: 'string' },
    split: { type: 'string', default: 'train' },
    size: { type: 'string', default: '256' },
    batch: { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
    prefetch: { type: 'string', default: '4' },
    steps: { type: 'string' },
    'make-synthetic': { type: 'string' },
    'generate-only': { type: 'boolean', default: false },
  },
});

const PATCH = 256;

/** A 512x512 tissue-like texture; each patch is a shifted, tinted window of it (fast to make). */
function baseTexture(): Buffer {
  const side = 2 * PATCH;
  const out = Buffer.alloc(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const o = (y * side + x) * 3;
      const cells = Math.sin(x / 6) * Math.cos(y / 7) + 0.5 * Math.sin((x + y) / 23);
      out[o] = Math.max(0, Math.min(255, 190 + 50 * cells));
      out[o + 1] = Math.max(0, Math.min(255, 110 + 70 * cells + 20 * Math.sin(x / 41)));
      out[o + 2] = Math.max(0, Math.min(255, 170 + 40 * Math.cos(y / 13)));
    }
  }
  return out;
}

async function makeSynthetic(root: string, n: number): Promise<void> {
  const folder = join(root, 'train');
  await mkdir(folder, { recursive: true });
  const texture = baseTexture();
  const patch = Buffer.alloc(PATCH * PATCH * 3);
  const rows = ['image,height_biopsy,width_biopsy,class'];
  for (let i = 0; i < n; i++) {
    const dx = (i * 37) % PATCH;
    const dy = (i * 91) % PATCH;
    const tint = (i * 13) % 40;
    for (let y = 0; y < PATCH; y++) {
      const from = ((y + dy) * 2 * PATCH + dx) * 3;
      texture.copy(patch, y * PATCH * 3, from, from + PATCH * 3);
    }
    for (let k = 0; k < patch.length; k += 3) patch[k] = Math.min(255, patch[k] + tint);
    const name = `synthetic${Math.floor(i / 100)}_${i}.jpeg`;
    await writeFile(
      join(folder, name),
      await sharp(patch, { raw: { width: PATCH, height: PATCH, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    rows.push(`${name},${PATCH * 80},${PATCH * 100},${i % 4}`);
  }
  await writeFile(join(root, 'train.csv'), rows.join('\n') + '\n');
  await writeFile(join(root, 'test.csv'), rows.slice(0, 1).join('\n') + '\n');
}

async function main(): Promise<void> {
  const root = args.root;
  if (!root) throw new Error('--root is required');
  if (args['generate-only']) {
    await makeSynthetic(root, Number(args['make-synthetic']));
    return;
  }
  if (args['make-synthetic']) {
    const child = fork(process.argv[1], ['--root', root, '--make-synthetic', args['make-synthetic'], '--generate-only'], {
      stdio: 'inherit',
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    if (code !== 0) throw new Error(`synthetic data generation exited with ${code}`);
  }
  const size = Number(args.size);
  const batch = Number(args.batch);
  const threads = Number(args.threads);
  const split = await openDataset({ format: args.dataset as DatasetFormat, path: root }, args.split);
  const loader = createLoader({
    split,
    imageSize: size,
    channels: 3,
    resize: 'bilinear',
    augment: { flip: true, rot90: true },
    globalBatch: batch,
    shard: { seed: 1, rank: 0, worldSize: 1 },
    dropLast: true,
    threads,
    prefetch: Number(args.prefetch),
    strict: false,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const steps = Math.min(loader.stepsPerEpoch, args.steps ? Number(args.steps) : Infinity);
  let started = 0;
  let images = 0;
  let step = 0;
  for await (const b of loader.batches(0)) {
    if (step === 0) started = performance.now();
    else images += b.n;
    if (++step >= steps) break;
  }
  const seconds = (performance.now() - started) / 1000;
  await loader.close();
  await split.close();
  const result = {
    dataset: args.dataset,
    image_size: size,
    batch,
    threads,
    images_per_s: Number((images / seconds).toFixed(1)),
    peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    n_images: split.length,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
