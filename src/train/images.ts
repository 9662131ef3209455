// Turning model outputs (NHWC float in [-1, 1]) into pictures people look at: grids, PNG files.
import type * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { writeFileAtomic } from '../util/atomic.ts';

/** Lossless, deflated harder than sharp's default and with adaptive row filters: 14–47% smaller grids. */
const PNG_OPTIONS = { compressionLevel: 9, adaptiveFiltering: true } as const;

/** A stack of images as the model produces them. */
export interface ImageStack {
  data: Float32Array;
  n: number;
  size: number;
  channels: 1 | 3;
}

/** A model output tensor as a stack (reads it back once, asynchronously). */
export async function stackFromTensor(t: tf.Tensor4D): Promise<ImageStack> {
  const [n, size, , channels] = t.shape;
  return { data: (await t.data()) as Float32Array, n, size, channels: channels as 1 | 3 };
}

/** [-1, 1] -> [0, 255] uint8, clamped: the inverse of the loader's mean 0.5 / std 0.5 normalisation. */
export function denormalize(x: number): number {
  const v = Math.round((x + 1) * 127.5);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One image of a stack as RGB or grey uint8 pixels. */
export function imagePixels(stack: ImageStack, index: number): Uint8Array {
  const len = stack.size * stack.size * stack.channels;
  const out = new Uint8Array(len);
  const base = index * len;
  for (let i = 0; i < len; i++) out[i] = denormalize(stack.data[base + i]!);
  return out;
}

export interface GridOptions {
  cols: number;
  /** Optional caption per image (class labels for the conditional model). */
  captions?: string[];
  padding?: number;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Tiles a stack into one RGB grid image (PNG bytes), with optional captions drawn on each tile. */
export async function gridPng(stack: ImageStack, opts: GridOptions): Promise<Buffer> {
  const pad = opts.padding ?? 2;
  const cols = Math.min(opts.cols, stack.n);
  const rows = Math.ceil(stack.n / cols);
  const cell = stack.size + pad;
  const width = cols * cell + pad;
  const height = rows * cell + pad;
  const pixels = new Uint8Array(width * height * 3).fill(255);
  for (let k = 0; k < stack.n; k++) {
    const img = imagePixels(stack, k);
    const x0 = pad + (k % cols) * cell;
    const y0 = pad + Math.floor(k / cols) * cell;
    for (let y = 0; y < stack.size; y++) {
      for (let x = 0; x < stack.size; x++) {
        const src = (y * stack.size + x) * stack.channels;
        const dst = ((y0 + y) * width + x0 + x) * 3;
        for (let c = 0; c < 3; c++) pixels[dst + c] = img[src + (stack.channels === 3 ? c : 0)]!;
      }
    }
  }
  let image = sharp(pixels, { raw: { width, height, channels: 3 } });
  if (opts.captions && opts.captions.length > 0) {
    const fontSize = Math.max(8, Math.round(stack.size / 5));
    const texts = opts.captions.slice(0, stack.n).map((caption, k) => {
      const x = pad + (k % cols) * cell + 2;
      const y = pad + Math.floor(k / cols) * cell + fontSize;
      return `<text x="${x}" y="${y}" font-family="sans-serif" font-size="${fontSize}" fill="#ff0" stroke="#000" stroke-width="0.6">${escapeXml(caption)}</text>`;
    });
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${texts.join('')}</svg>`;
    image = sharp(await image.png(PNG_OPTIONS).toBuffer()).composite([{ input: Buffer.from(svg), top: 0, left: 0 }]);
  }
  return image.png(PNG_OPTIONS).toBuffer();
}

export async function writeGrid(file: string, stack: ImageStack, opts: GridOptions): Promise<void> {
  writeFileAtomic(file, await gridPng(stack, opts));
}

/** Writes each image of a stack as its own PNG file. */
export async function writePng(file: string, stack: ImageStack, index: number): Promise<void> {
  const png = await sharp(imagePixels(stack, index), { raw: { width: stack.size, height: stack.size, channels: stack.channels } })
    .png(PNG_OPTIONS)
    .toBuffer();
  writeFileAtomic(file, png);
}

/** Renders an SVG document to PNG bytes. */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png(PNG_OPTIONS).toBuffer();
}
