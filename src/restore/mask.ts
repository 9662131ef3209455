// Which pixels are missing. A mask is one byte per pixel location (all channels together), 1 for
// missing, row-major per image: n x size x size. Specs:
//   center:F      a centred square covering the fraction F of the image (side round(size * sqrt(F)))
//   box:x,y,w,h   a rectangle, top-left corner (x, y), in pixels of the model's image size
//   random:F      each pixel missing with probability F, drawn per image from (seed, image index)
//   stripes:W,G   vertical stripes W pixels wide every W+G columns, the first starting at column 0
//   FILE.png      a grey PNG of the model's image size: non-black pixels are missing
//   FILE.npz      member 'mask' or '<split>_masks' (what `medvae impute --out x.npz` writes):
//                 size x size, or one per image (N x size x size); non-zero is missing
import { readFileSync } from 'node:fs';
import { NpzArchive } from '../data/npz.ts';
import { hashKeys, mulberry32, Stream } from '../util/rng.ts';
import { MaskError } from './errors.ts';
import { loadSharp } from '../util/sharp.ts';

/** Keys of the mask stream under Stream.eval (other restore streams use other second keys). */
const MASK_KEY = 20;

export type MaskSpec =
  | { kind: 'center'; fraction: number }
  | { kind: 'box'; x: number; y: number; w: number; h: number }
  | { kind: 'random'; fraction: number }
  | { kind: 'stripes'; width: number; gap: number }
  | { kind: 'file'; path: string };

const USAGE = 'expected center:FRACTION, box:x,y,w,h, random:FRACTION, stripes:WIDTH,GAP, or a mask .png/.npz file';

function numbers(spec: string, body: string, count: number): number[] {
  const parts = body.split(',').map((p) => Number(p.trim()));
  if (parts.length !== count || parts.some((v) => !Number.isFinite(v))) throw new MaskError(`--mask ${spec}: ${USAGE}`);
  return parts;
}

function fraction(spec: string, body: string): number {
  const [f] = numbers(spec, body, 1) as [number];
  if (!(f > 0 && f < 1)) throw new MaskError(`--mask ${spec}: the fraction must be in (0, 1), e.g. center:0.25`);
  return f;
}

export function parseMaskSpec(spec: string): MaskSpec {
  const colon = spec.indexOf(':');
  const kind = colon > 0 ? spec.slice(0, colon) : '';
  const body = spec.slice(colon + 1);
  switch (kind) {
    case 'center':
      return { kind, fraction: fraction(spec, body) };
    case 'random':
      return { kind, fraction: fraction(spec, body) };
    case 'box': {
      const [x, y, w, h] = numbers(spec, body, 4) as [number, number, number, number];
      if (![x, y, w, h].every(Number.isInteger) || x < 0 || y < 0 || w < 1 || h < 1)
        throw new MaskError(`--mask ${spec}: box needs integers x,y >= 0 and w,h >= 1`);
      return { kind, x, y, w, h };
    }
    case 'stripes': {
      const [width, gap] = numbers(spec, body, 2) as [number, number];
      if (!Number.isInteger(width) || !Number.isInteger(gap) || width < 1 || gap < 1)
        throw new MaskError(`--mask ${spec}: stripes needs integers WIDTH >= 1 and GAP >= 1`);
      return { kind, width, gap };
    }
    default:
      if (/\.(png|npz)$/i.test(spec)) return { kind: 'file', path: spec };
      throw new MaskError(`--mask ${spec}: ${USAGE}`);
  }
}

/** Masks of images `first .. first + n - 1` (indices into the data, so a mask does not depend on batching). */
export type MaskSource = (first: number, n: number) => Uint8Array;

/** A mask source for `spec` at the model's image `size`; file masks are read once here. */
export async function maskSource(spec: MaskSpec, size: number, seed: number): Promise<MaskSource> {
  const per = size * size;
  if (spec.kind === 'random') {
    return (first, n) => {
      const out = new Uint8Array(n * per);
      for (let k = 0; k < n; k++) {
        const rand = mulberry32(hashKeys(seed, Stream.eval, MASK_KEY, first + k));
        for (let p = 0; p < per; p++) out[k * per + p] = rand() < spec.fraction ? 1 : 0;
      }
      return checkMasks(out, n, per, `random:${spec.fraction}`, first);
    };
  }
  const fixed = spec.kind === 'file' ? await readMaskFile(spec.path, size) : [geometricMask(spec, size)];
  const label = spec.kind === 'file' ? spec.path : describeSpec(spec);
  return (first, n) => {
    if (fixed.length > 1 && first + n > fixed.length)
      throw new MaskError(
        `${label}: holds ${fixed.length} masks, image ${first + n - 1} needs one; give one mask for all images or one per image`,
      );
    const out = new Uint8Array(n * per);
    for (let k = 0; k < n; k++) out.set(fixed.length === 1 ? fixed[0]! : fixed[first + k]!, k * per);
    return checkMasks(out, n, per, label, first);
  };
}

function describeSpec(spec: Exclude<MaskSpec, { kind: 'file' }>): string {
  switch (spec.kind) {
    case 'center':
    case 'random':
      return `${spec.kind}:${spec.fraction}`;
    case 'box':
      return `box:${spec.x},${spec.y},${spec.w},${spec.h}`;
    case 'stripes':
      return `stripes:${spec.width},${spec.gap}`;
  }
}

function geometricMask(spec: Exclude<MaskSpec, { kind: 'file' | 'random' }>, size: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const fill = (x0: number, y0: number, w: number, h: number): void => {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) out[y * size + x] = 1;
  };
  if (spec.kind === 'center') {
    const side = Math.round(size * Math.sqrt(spec.fraction));
    const start = Math.floor((size - side) / 2);
    fill(start, start, side, side);
  } else if (spec.kind === 'box') {
    if (spec.x + spec.w > size || spec.y + spec.h > size) {
      throw new MaskError(
        `--mask ${describeSpec(spec)}: the box reaches past the ${size}x${size} image the model sees; give coordinates at that size`,
      );
    }
    fill(spec.x, spec.y, spec.w, spec.h);
  } else {
    for (let x = 0; x < size; x++) if (x % (spec.width + spec.gap) < spec.width) fill(x, 0, 1, size);
  }
  return out;
}

/** Every image needs missing pixels to impute and observed ones to condition on. */
function checkMasks(masks: Uint8Array, n: number, per: number, label: string, first: number): Uint8Array {
  for (let k = 0; k < n; k++) {
    let missing = 0;
    for (let p = 0; p < per; p++) missing += masks[k * per + p]!;
    if (missing === 0) throw new MaskError(`mask ${label}: image ${first + k} has no missing pixels; choose a larger fraction or region`);
    if (missing === per)
      throw new MaskError(`mask ${label}: image ${first + k} has no observed pixels to condition on; choose a smaller region`);
  }
  return masks;
}

async function readMaskFile(path: string, size: number): Promise<Uint8Array[]> {
  if (/\.png$/i.test(path)) {
    const sharp = await loadSharp();
    const { data, info } = await sharp(readFileSync(path)).greyscale().raw().toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size)
      throw new MaskError(
        `${path}: mask is ${info.width}x${info.height}, the model sees ${size}x${size} images; give a ${size}x${size} mask`,
      );
    const step = info.channels;
    return [Uint8Array.from({ length: size * size }, (_, p) => (data[p * step]! > 0 ? 1 : 0))];
  }
  const archive = await NpzArchive.open(path);
  try {
    const member = archive.arrayNames().find((name) => name === 'mask' || name.endsWith('_masks'));
    if (!member) throw new MaskError(`${path}: no member 'mask' or '*_masks' (members: ${archive.arrayNames().join(', ')})`);
    // openArray refuses anything but one-byte dtypes, so a row is one byte per pixel.
    const array = await archive.openArray(member);
    const shape = array.shape;
    const [h, w] = shape.slice(-2);
    if (shape.length < 2 || shape.length > 3 || h !== size || w !== size) {
      throw new MaskError(
        `${path}: mask '${member}' has shape (${shape.join(', ')}), the model sees ${size}x${size} images; give ${size}x${size} or N x ${size}x${size} uint8`,
      );
    }
    const count = shape.length === 2 ? 1 : shape[0]!;
    const bytes = await array.readRows(0, shape[0]!);
    return Array.from({ length: count }, (_, k) =>
      Uint8Array.from(bytes.subarray(k * size * size, (k + 1) * size * size), (v) => (v > 0 ? 1 : 0)),
    );
  } finally {
    await archive.close();
  }
}
