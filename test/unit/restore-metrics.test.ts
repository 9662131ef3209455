// Restoration metrics and baselines on hand-made images against hand-computed values; masks,
// noise, AUROC of anomaly scores and the scores CSV.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../../src/backend/index.ts';
import { writeNpz } from '../../src/data/npz-writer.ts';
import { anomalyAuroc, checkNormalClasses, parseNormal } from '../../src/restore/anomaly.ts';
import { gaussianBlur, harmonicInpaint, meanFill, medianFilter } from '../../src/restore/baselines.ts';
import type { ImageStack } from '../../src/run/images.ts';
import { MaskError, NoiseSpecError, NormalClassError } from '../../src/restore/errors.ts';
import { maskSource, parseMaskSpec } from '../../src/restore/mask.ts';
import { maskedPsnrPerImage, maskedSsimPerImage, psnrPerImage, ssimPerImage } from '../../src/restore/metrics.ts';
import { addNoise, parseNoise } from '../../src/restore/noise.ts';
import { readScoresCsv, writeScoresCsv } from '../../src/restore/scores-csv.ts';
import { tempDir } from '../helpers/temp-dir.ts';

before(async () => {
  await initBackend('wasm');
});

const grey = (size: number, fill: (x: number, y: number) => number): ImageStack => ({
  data: Float32Array.from({ length: size * size }, (_, p) => fill(p % size, Math.floor(p / size))),
  n: 1,
  size,
  channels: 1,
});

describe('metrics', () => {
  it('masked PSNR counts only missing pixels: error 0.2 on them -> 10 log10(4 / 0.04) = 20 dB', () => {
    const target = grey(4, () => 0);
    const predicted = new Float32Array(16).fill(0.5);
    const masks = new Uint8Array(16);
    masks.fill(1, 0, 4);
    predicted.fill(0.2, 0, 4);
    assert.ok(Math.abs(maskedPsnrPerImage(predicted, target, masks)[0]! - 20) < 1e-5);
    // All values: mse = (4 * 0.04 + 12 * 0.25) / 16.
    assert.ok(Math.abs(psnrPerImage(predicted, target)[0]! - 10 * Math.log10(4 / ((4 * 0.04 + 12 * 0.25) / 16))) < 1e-5);
  });

  it('masked SSIM over an all-missing mask is the eval SSIM; identical images score 1', async () => {
    const target = grey(16, (x, y) => Math.sin(x / 3) * Math.cos(y / 4));
    const predicted = target.data.map((v, i) => v + 0.1 * Math.sin(i));
    const all = new Uint8Array(256).fill(1);
    assert.ok(Math.abs((await maskedSsimPerImage(predicted, target, all))[0]! - (await ssimPerImage(predicted, target))[0]!) < 1e-5);
    const centre = new Uint8Array(256);
    centre[8 * 16 + 8] = 1;
    assert.ok(Math.abs((await maskedSsimPerImage(target.data, target, centre))[0]! - 1) < 1e-6);
    const corner = new Uint8Array(256);
    corner[0] = 1;
    assert.ok(Number.isNaN((await maskedSsimPerImage(predicted, target, corner))[0]!), 'no valid window is centred on a corner');
  });
});

describe('baselines', () => {
  it('mean fill puts the observed mean into the hole', () => {
    const img = grey(3, (x) => x);
    const masks = new Uint8Array(9);
    masks[4] = 1;
    assert.equal(meanFill(img, masks)[4], ((0 + 1 + 2) * 3) / 8 - 1 / 8);
  });

  it('harmonic inpainting recovers a linear ramp inside a hole exactly', () => {
    const ramp = grey(24, (x, y) => -0.9 + 0.05 * x + 0.02 * y);
    const masks = new Uint8Array(24 * 24);
    for (let y = 6; y < 18; y++) for (let x = 5; x < 15; x++) masks[y * 24 + x] = 1;
    const out = harmonicInpaint({ ...ramp, data: ramp.data.map((v, p) => (masks[p] ? 0 : v)) }, masks, { tolerance: 1e-9 });
    for (let p = 0; p < out.length; p++) assert.ok(Math.abs(out[p]! - ramp.data[p]!) < 1e-5, `pixel ${p}: ${out[p]} vs ${ramp.data[p]}`);
  });

  it('blur keeps constants and averages; the median removes one outlier', () => {
    const flat = grey(8, () => 0.3);
    for (const v of gaussianBlur(flat, 1)) assert.ok(Math.abs(v - 0.3) < 1e-6);
    const spike = grey(5, () => 0);
    spike.data[12] = 1;
    assert.equal(medianFilter(spike, 3)[12], 0);
    const blurred = gaussianBlur(spike, 1);
    assert.ok(blurred[12]! < 1 && blurred[12]! > 0 && blurred[11]! > 0);
  });
});

describe('masks', () => {
  it('center, box, stripes and random masks at the model size', async () => {
    const center = (await maskSource(parseMaskSpec('center:0.25'), 8, 0))(0, 1);
    assert.equal(
      center.reduce((s, v) => s + v, 0),
      16,
    );
    assert.equal(center[2 * 8 + 2], 1);
    assert.equal(center[1 * 8 + 1], 0);
    const box = (await maskSource(parseMaskSpec('box:1,2,3,1'), 8, 0))(0, 1);
    assert.deepEqual([...box.subarray(16, 24)], [0, 1, 1, 1, 0, 0, 0, 0]);
    const stripes = (await maskSource(parseMaskSpec('stripes:2,1'), 6, 0))(0, 1);
    assert.deepEqual([...stripes.subarray(0, 6)], [1, 1, 0, 1, 1, 0]);
    const random = await maskSource(parseMaskSpec('random:0.5'), 16, 4);
    assert.deepEqual(random(3, 1), random(0, 4).subarray(3 * 256), 'a random mask depends on the image index, not the batch');
  });

  it('bad masks fail in one named line', async () => {
    assert.throws(() => parseMaskSpec('centre:0.2'), MaskError);
    assert.throws(() => parseMaskSpec('center:1.5'), MaskError);
    await assert.rejects(maskSource(parseMaskSpec('box:6,6,4,4'), 8, 0), /reaches past the 8x8/);
    const dir = tempDir('medvae-mask-');
    const png = join(dir, 'm.png');
    writeFileSync(
      png,
      await sharp(Buffer.alloc(28 * 28, 255), { raw: { width: 28, height: 28, channels: 1 } })
        .png()
        .toBuffer(),
    );
    await assert.rejects(maskSource(parseMaskSpec(png), 64, 0), (e: unknown) => e instanceof MaskError && /28x28.*64x64/.test(e.message));
    const empty = join(dir, 'empty.npz');
    writeNpz(empty, { mask: { dtype: '|u1', shape: [8, 8], data: new Uint8Array(64) } });
    const source = await maskSource(parseMaskSpec(empty), 8, 0);
    assert.throws(
      () => source(0, 1),
      (e: unknown) => e instanceof MaskError && /no missing pixels/.test(e.message),
    );
    const ok = join(dir, 'ok.npz');
    writeNpz(ok, {
      test_masks: { dtype: '|u1', shape: [2, 8, 8], data: Uint8Array.from({ length: 128 }, (_, i) => (i % 3 === 0 ? 1 : 0)) },
    });
    assert.equal((await maskSource(parseMaskSpec(ok), 8, 0))(1, 1)[2], 1, 'image 1 gets its own mask (value 66 of the member)');
  });
});

describe('noise', () => {
  it('parses the three models and refuses others', () => {
    assert.deepEqual(parseNoise('gaussian:0.1'), { kind: 'gaussian', sigma: 0.1 });
    assert.deepEqual(parseNoise('saltpepper:0.05'), { kind: 'saltpepper', p: 0.05 });
    assert.deepEqual(parseNoise('poisson:30'), { kind: 'poisson', peak: 30 });
    assert.throws(() => parseNoise('speckle:0.1'), NoiseSpecError);
  });

  it('gaussian noise has the asked sigma on the [0, 1] scale; salt and pepper hits the asked fraction; seeded per image', () => {
    const n = 2;
    const clean = new Float32Array(n * 64 * 64).fill(0);
    const noisy = addNoise(clean, n, 1, parseNoise('gaussian:0.05'), 1, 0);
    const sd = Math.sqrt(noisy.reduce((s, v) => s + ((v + 1) / 2 - 0.5) ** 2, 0) / noisy.length);
    assert.ok(Math.abs(sd - 0.05) < 0.003, `sd ${sd}`);
    const sp = addNoise(clean, n, 1, parseNoise('saltpepper:0.1'), 1, 0);
    const hit = sp.filter((v) => v !== 0).length / sp.length;
    assert.ok(Math.abs(hit - 0.1) < 0.02, `hit ${hit}`);
    assert.deepEqual(addNoise(clean.subarray(4096), 1, 1, parseNoise('gaussian:0.05'), 1, 1), noisy.subarray(4096));
  });
});

describe('anomaly AUROC and scores.csv', () => {
  it('AUROC of anomalies (non-normal classes) against normal ones, by hand', () => {
    // Normal (class 0) scores 1, 2, 5; anomalies 3, 4, 6: pairs won 2+2+3 of 9 (5 beats 3 and 4).
    assert.ok(Math.abs(anomalyAuroc([1, 2, 5, 3, 4, 6], [0, 0, 0, 1, 2, 1], [0]) - 7 / 9) < 1e-12);
    assert.deepEqual(parseNormal('0,2'), [0, 2]);
    assert.throws(
      () => checkNormalClasses([0, 1, 1], [3], ['a', 'b']),
      (e: unknown) => e instanceof NormalClassError && /class 3/.test(e.message),
    );
    assert.throws(() => checkNormalClasses([0, 0], [0], ['a']), NormalClassError);
    assert.throws(() => checkNormalClasses([null, 0], [0], ['a']), NormalClassError);
  });

  it('writes and reads back', async () => {
    const path = join(tempDir('medvae-scores-'), 'scores.csv');
    const t = { index: [3, 7], label: [1, null], neg_elbo: [-12.5, 3e4], neg_iwae: [-13.25, 2.9e4], recon_mse: [0.01, 0.5] };
    writeScoresCsv(path, t);
    assert.deepEqual(readScoresCsv(path), t);
  });
});
