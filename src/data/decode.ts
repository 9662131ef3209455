// Decoding and per-batch preparation: the body of a decode task, run by the piscina workers
// (workers/decode-worker.ts) or, with threads=0, on the calling thread. Same code either way.
import { readFile } from 'node:fs/promises';
import { CorruptImageError } from './errors.ts';
import { transformSample, type SampleTransform } from './transforms.ts';
import type { RawImage, SampleRecord } from './types.ts';
import { loadSharp } from '../util/sharp.ts';

/** Decode a PNG/JPEG file to HWC uint8 with 1 or 3 channels (alpha dropped). */
export async function decodeImageFile(path: string): Promise<RawImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new CorruptImageError(path, `cannot read image (${(err as Error).message})`, { cause: err });
  }
  try {
    // failOn 'warning' rejects truncated or damaged JPEG/PNG data instead of returning grey pixels.
    // Output is sRGB (CMYK and other spaces converted) or single-channel for greyscale sources.
    const sharp = await loadSharp();
    const { data, info } = await sharp(bytes, { failOn: 'warning' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 && info.channels !== 3) {
      throw new Error(`decoded to ${info.channels} channels, expected 1 or 3`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: info.height, width: info.width, channels: info.channels };
  } catch (err) {
    // libvips messages span lines; one line keeps warnings and CLI errors readable.
    const reason = (err as Error).message.replace(/\s+/g, ' ').trim();
    throw new CorruptImageError(path, `not a decodable PNG/JPEG image (${reason})`, { cause: err });
  }
}

export interface DecodeTask {
  records: SampleRecord[];
  /** Dataset index of each record: with the epoch, it keys the sample's augmentation. */
  indices: Int32Array;
  epoch: number;
  transform: SampleTransform;
}

export interface DecodeFailure {
  /** Position in the batch. */
  position: number;
  message: string;
}

export interface DecodeResult {
  /** N x size x size x channels in [-1, 1]; slots of failed samples are left at zero. */
  images: Float32Array;
  failures: DecodeFailure[];
}

export async function decodeBatch(task: DecodeTask): Promise<DecodeResult> {
  const { size, channels } = task.transform;
  const stride = size * size * channels;
  const images = new Float32Array(task.records.length * stride);
  const failures: DecodeFailure[] = [];
  for (let position = 0; position < task.records.length; position++) {
    const record = task.records[position];
    try {
      const image = record.kind === 'pixels' ? record.image : await decodeImageFile(record.path);
      transformSample(image, task.transform, task.epoch, task.indices[position], images, position * stride);
    } catch (err) {
      if (!(err instanceof CorruptImageError)) throw err;
      failures.push({ position, message: err.message });
    }
  }
  return { images, failures };
}
