// `medvae data download`: fetch a MedMNIST npz from zenodo into <dir>/<file>.part, resuming a
// partial file with an HTTP Range request, check its MD5 against MedMNIST's published list, then
// rename it into place (so <dir>/<file> is only ever a complete, verified file).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { DownloadError } from './errors.ts';
import { MEDMNIST, MEDMNIST_SIZES, medmnistFileName, type MedmnistSize } from './medmnist.ts';

/** The MedMNIST v3 record; MEDVAE_MEDMNIST_URL replaces it (tests, mirrors). */
export const MEDMNIST_BASE_URL = 'https://zenodo.org/records/10519652/files';

export interface DownloadOptions {
  flag: string;
  size: number;
  dir: string;
  log?: (line: string) => void;
}

export function isMedmnistSize(size: number): size is MedmnistSize {
  return (MEDMNIST_SIZES as readonly number[]).includes(size);
}

async function md5Of(path: string): Promise<string> {
  const hash = createHash('md5');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then((s) => s.size, () => undefined);
}

/** Download (or confirm) one MedMNIST file; resolves to its path. */
export async function downloadMedmnist(options: DownloadOptions): Promise<string> {
  const { flag, size, dir, log = () => undefined } = options;
  const known = MEDMNIST[flag];
  if (!known) throw new DownloadError(`unknown MedMNIST flag '${flag}' (known: ${Object.keys(MEDMNIST).join(', ')})`);
  if (!isMedmnistSize(size)) throw new DownloadError(`size ${size} is not one of ${MEDMNIST_SIZES.join(', ')}`);
  const file = medmnistFileName(flag, size);
  const expected = known.md5[size];
  const target = join(dir, file);
  const part = `${target}.part`;

  if ((await sizeOf(target)) !== undefined) {
    const actual = await md5Of(target);
    if (actual === expected) {
      log(`${target} is already present (MD5 ${actual})`);
      return target;
    }
    throw new DownloadError(`${target} exists but its MD5 is ${actual}, expected ${expected}: remove it and download again`);
  }

  const base = (process.env.MEDVAE_MEDMNIST_URL ?? MEDMNIST_BASE_URL).replace(/\/+$/, '');
  const url = `${base}/${file}?download=1`;
  const have = (await sizeOf(part)) ?? 0;
  const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
  let response: Response;
  try {
    response = await fetch(url, { headers });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new DownloadError(`cannot reach ${url} (${cause}): check the network, or set MEDVAE_MEDMNIST_URL to a mirror`, { cause: err });
  }
  // The folder is made only now, so a download that never started leaves nothing behind.
  const madeDir = await mkdir(dir, { recursive: true });
  try {
    await receive(response, part, have, url, log);
  } catch (err) {
    if (madeDir && (await sizeOf(part)) === undefined) await rm(madeDir, { recursive: true, force: true });
    throw err;
  }

  const actual = await md5Of(part);
  if (actual !== expected) {
    await rm(part, { force: true });
    throw new DownloadError(`${file}: MD5 ${actual} does not match the published ${expected}; the download was removed`);
  }
  await rename(part, target);
  log(`saved ${target} (MD5 ${actual} verified)`);
  return target;
}

/** Writes (or appends) the response body to the part file. */
async function receive(response: Response, part: string, have: number, url: string, log: (line: string) => void): Promise<void> {
  if (response.status === 416 && have > 0) {
    // Nothing left to fetch: the partial file is already whole (checked below).
    log(`${part} is already complete (${have} bytes)`);
  } else if (response.ok && response.body) {
    const resumed = response.status === 206;
    log(resumed ? `resuming ${url} at byte ${have}` : `downloading ${url}`);
    // A 200 answer to a Range request is the whole file again: start the part file over.
    const sink = createWriteStream(part, { flags: resumed ? 'a' : 'w' });
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), sink);
  } else {
    await response.body?.cancel();
    throw new DownloadError(`GET ${url} failed: HTTP ${response.status} ${response.statusText}`);
  }
}
