// Per-sample transforms, in the order they run: centre crop to a square, resize to the model's
// side, then one pass that applies the random flips/rotation, converts grey<->RGB and normalises
// to [-1, 1] (mean 0.5, std 0.5) straight into the batch buffer.
// The random choices for a sample are a pure function of (seed, epoch, dataset index), so a sample
// is augmented the same way whichever thread or worker decodes it.
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import type { RawImage } from './types.ts';

export type ResizeMode = 'area' | 'bilinear';

/** An image between steps: HWC, values 0..255 (uint8 straight from a decoder, float after resizing). */
export interface Pixels {
  data: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: number;
}

export interface AugmentChoice {
  flipH: boolean;
  flipV: boolean;
  /** Quarter turns counter-clockwise, 0..3 (as numpy.rot90). */
  rot90: number;
}

export interface AugmentOptions {
  flip: boolean;
  rot90: boolean;
}

export interface SampleTransform {
  size: number;
  channels: 1 | 3;
  resize: ResizeMode;
  augment: AugmentOptions;
  seed: number;
}

export const NO_AUGMENT: AugmentChoice = { flipH: false, flipV: false, rot90: 0 };

/** The random choices for one sample. Draws are consumed in a fixed order whatever is enabled. */
export function augmentChoice(seed: number, epoch: number, index: number, options: AugmentOptions): AugmentChoice {
  const draw = mulberry32(hashKeys(seed, Stream.augment, epoch, index));
  const flipH = draw() < 0.5;
  const flipV = draw() < 0.5;
  const turns = Math.floor(draw() * 4);
  return {
    flipH: options.flip && flipH,
    flipV: options.flip && flipV,
    rot90: options.rot90 ? turns : 0,
  };
}

/** The largest centred square (a view when the image is already square). */
export function centerCropSquare(image: Pixels): Pixels {
  const side = Math.min(image.height, image.width);
  if (image.height === side && image.width === side) return image;
  const top = Math.floor((image.height - side) / 2);
  const left = Math.floor((image.width - side) / 2);
  const c = image.channels;
  const out = new (image.data.constructor as Uint8ArrayConstructor | Float32ArrayConstructor)(side * side * c);
  for (let y = 0; y < side; y++) {
    const from = ((top + y) * image.width + left) * c;
    out.set(image.data.subarray(from, from + side * c), y * side * c);
  }
  return { data: out, height: side, width: side, channels: c };
}

/**
 * Resize to outH x outW. 'area' averages the source box each output pixel covers (adaptive average
 * pooling, PyTorch's mode='area'); 'bilinear' samples at half-pixel centres (align_corners=false).
 */
export function resize(image: Pixels, outH: number, outW: number, mode: ResizeMode): Pixels {
  if (image.height === outH && image.width === outW) return image;
  return mode === 'area' ? resizeArea(image, outH, outW) : resizeBilinear(image, outH, outW);
}

function resizeArea(image: Pixels, outH: number, outW: number): Pixels {
  const { data, height: inH, width: inW, channels: c } = image;
  const out = new Float32Array(outH * outW * c);
  for (let oy = 0; oy < outH; oy++) {
    const y0 = Math.floor((oy * inH) / outH);
    const y1 = Math.ceil(((oy + 1) * inH) / outH);
    for (let ox = 0; ox < outW; ox++) {
      const x0 = Math.floor((ox * inW) / outW);
      const x1 = Math.ceil(((ox + 1) * inW) / outW);
      const count = (y1 - y0) * (x1 - x0);
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += data[(y * inW + x) * c + ch];
        out[(oy * outW + ox) * c + ch] = sum / count;
      }
    }
  }
  return { data: out, height: outH, width: outW, channels: c };
}

function resizeBilinear(image: Pixels, outH: number, outW: number): Pixels {
  const { data, height: inH, width: inW, channels: c } = image;
  const out = new Float32Array(outH * outW * c);
  const sourceCoord = (o: number, inSize: number, outSize: number): [number, number, number] => {
    const s = Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    return [i0, i1, s - i0];
  };
  for (let oy = 0; oy < outH; oy++) {
    const [y0, y1, wy] = sourceCoord(oy, inH, outH);
    for (let ox = 0; ox < outW; ox++) {
      const [x0, x1, wx] = sourceCoord(ox, inW, outW);
      for (let ch = 0; ch < c; ch++) {
        const a = data[(y0 * inW + x0) * c + ch];
        const b = data[(y0 * inW + x1) * c + ch];
        const d = data[(y1 * inW + x0) * c + ch];
        const e = data[(y1 * inW + x1) * c + ch];
        const top = a + (b - a) * wx;
        const bottom = d + (e - d) * wx;
        out[(oy * outW + ox) * c + ch] = top + (bottom - top) * wy;
      }
    }
  }
  return { data: out, height: outH, width: outW, channels: c };
}

/**
 * Write a square image into `out` at `offset` as channels x [-1, 1], applying the flips (first) and
 * the rotation (then), converting grey<->RGB (ITU-R 601 luma for RGB->grey) on the way.
 */
export function writeNormalized(
  image: Pixels,
  channels: 1 | 3,
  choice: AugmentChoice,
  out: Float32Array,
  offset: number,
): void {
  const { data, width: side, channels: c } = image;
  if (image.height !== side) throw new RangeError(`writeNormalized needs a square image, got ${image.height}x${side}`);
  // Every flip/rotation combination maps output (y, x) to a source pixel affinely:
  // source = origin + y * rowStep + x * colStep (in pixels). Find the map from three points.
  const src = (y: number, x: number): number => {
    const [sy, sx] = sourceOf(y, x, side - 1, choice);
    return sy * side + sx;
  };
  const origin = src(0, 0);
  const colStep = side > 1 ? src(0, 1) - origin : 0;
  const rowStep = side > 1 ? src(1, 0) - origin : 0;
  const scale = 1 / 127.5;
  let to = offset;
  for (let y = 0; y < side; y++) {
    let from = (origin + y * rowStep) * c;
    const step = colStep * c;
    for (let x = 0; x < side; x++, from += step) {
      if (c === channels) {
        for (let ch = 0; ch < c; ch++) out[to++] = data[from + ch] * scale - 1;
      } else if (c === 1) {
        const v = data[from] * scale - 1;
        out[to++] = v;
        out[to++] = v;
        out[to++] = v;
      } else {
        out[to++] = (0.299 * data[from] + 0.587 * data[from + 1] + 0.114 * data[from + 2]) * scale - 1;
      }
    }
  }
}

/** The source pixel of output (y, x): undo the quarter turns, then the flips. */
function sourceOf(y: number, x: number, last: number, choice: AugmentChoice): [number, number] {
  let sy = y;
  let sx = x;
  for (let t = 0; t < choice.rot90; t++) {
    const py = sy;
    sy = sx;
    sx = last - py;
  }
  if (choice.flipV) sy = last - sy;
  if (choice.flipH) sx = last - sx;
  return [sy, sx];
}

/** The whole per-sample chain: crop, resize, augment for (epoch, index), normalise into `out`. */
export function transformSample(
  image: RawImage | Pixels,
  transform: SampleTransform,
  epoch: number,
  index: number,
  out: Float32Array,
  offset: number,
): void {
  const square = resize(centerCropSquare(image), transform.size, transform.size, transform.resize);
  writeNormalized(square, transform.channels, augmentChoice(transform.seed, epoch, index, transform.augment), out, offset);
}
