import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  augmentChoice,
  centerCropSquare,
  NO_AUGMENT,
  resize,
  writeNormalized,
  type AugmentChoice,
  type Pixels,
} from '../../src/data/transforms.ts';

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
    const seq = (seed: number, epoch: number) => Array.from({ length: 64 }, (_, i) => JSON.stringify(augmentChoice(seed, epoch, i, both)));
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
