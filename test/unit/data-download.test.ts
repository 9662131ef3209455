import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it, mock } from 'node:test';
import { Command } from 'commander';
import { registerDataCommands } from '../../src/cli/data-command.ts';
import { downloadMedmnist } from '../../src/data/download.ts';
import { DownloadError } from '../../src/data/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// A local stand-in for zenodo, serving the bundled official retinamnist.npz:
//   /good/...     honours Range requests (206)
//   /norange/...  ignores Range (always 200 with the whole file)
//   /corrupt/...  serves the file with one byte changed
// and 404 for any other file.
let official: Buffer;
let server: Server;
let base: string;
let dir: string;
const requests: { url: string; headers: IncomingHttpHeaders }[] = [];

before(async () => {
  official = await readFile('data/retinamnist.npz');
  server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    const [, mode, file] = /^\/(\w+)\/([^?]+)/.exec(req.url ?? '') ?? [];
    if (file !== 'retinamnist.npz') {
      res.writeHead(404).end('not found');
      return;
    }
    let body = official;
    if (mode === 'corrupt') {
      body = Buffer.from(official);
      body[1000] ^= 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && mode === 'good') {
      const from = Number(range[1]);
      if (from >= body.length) {
        res.writeHead(416).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${from}-${body.length - 1}/${body.length}`, 'Content-Length': body.length - from });
      res.end(body.subarray(from));
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  delete process.env.MEDVAE_MEDMNIST_URL;
});

beforeEach(async () => {
  dir = tempDir('medvae-download-');
  requests.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('medvae data download', () => {
  it('downloads, verifies the MD5 and renames into place; a second call does not fetch again', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
    const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
    assert.equal(path, join(dir, 'retinamnist.npz'));
    assert.equal(md5(await readFile(path)), 'bd4c0672f1bba3e3a89f0e4e876791e4');
    assert.equal(await exists(`${path}.part`), false);
    assert.equal(requests[0].url, '/good/retinamnist.npz?download=1');
    const lines: string[] = [];
    await downloadMedmnist({ flag: 'retinamnist', size: 28, dir, log: (l) => lines.push(l) });
    assert.equal(requests.length, 1);
    assert.match(lines[0], /already present/);
  });

  it('resumes a partial download with a Range request', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
    const part = join(dir, 'retinamnist.npz.part');
    await writeFile(part, official.subarray(0, 1_000_000));
    const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
    assert.equal(requests.length, 1);
    assert.equal(requests[0].headers.range, 'bytes=1000000-');
    assert.ok((await readFile(path)).equals(official));
  });

  it('starts over when the server ignores the Range request', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/norange`;
    await writeFile(join(dir, 'retinamnist.npz.part'), 'stale bytes from another file');
    const path = await downloadMedmnist({ flag: 'retinamnist', size: 28, dir });
    assert.equal(requests[0].headers.range, 'bytes=29-');
    assert.ok((await readFile(path)).equals(official));
  });

  it('a wrong MD5 fails and leaves neither the file nor the part in place', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/corrupt`;
    await assert.rejects(downloadMedmnist({ flag: 'retinamnist', size: 28, dir }), (err: Error) => {
      assert.ok(err instanceof DownloadError);
      assert.match(err.message, /MD5 [0-9a-f]{32} does not match the published bd4c0672f1bba3e3a89f0e4e876791e4/);
      return true;
    });
    assert.equal(await exists(join(dir, 'retinamnist.npz')), false);
    assert.equal(await exists(join(dir, 'retinamnist.npz.part')), false);
  });

  it('an HTTP 404 is reported with the URL and nothing is written', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
    await assert.rejects(
      downloadMedmnist({ flag: 'pathmnist', size: 64, dir }),
      /GET http:\/\/127\.0\.0\.1:\d+\/good\/pathmnist_64\.npz\?download=1 failed: HTTP 404/,
    );
    assert.equal(await exists(join(dir, 'pathmnist_64.npz')), false);
    assert.equal(await exists(join(dir, 'pathmnist_64.npz.part')), false);
  });

  it('refuses unknown flags and sizes before any request', async () => {
    await assert.rejects(downloadMedmnist({ flag: 'brainmnist', size: 28, dir }), /unknown MedMNIST flag 'brainmnist'.*retinamnist/);
    await assert.rejects(downloadMedmnist({ flag: 'chestmnist', size: 32, dir }), /size 32 is not one of 28, 64, 128, 224/);
    assert.equal(requests.length, 0);
  });
});

describe('data CLI commands', () => {
  it('`data download` and `data info` run through commander', async () => {
    process.env.MEDVAE_MEDMNIST_URL = `${base}/good`;
    const printed: string[] = [];
    const log = mock.method(console, 'log', (line: string) => printed.push(line));
    const error = mock.method(console, 'error', () => undefined);
    try {
      const program = new Command('medvae').exitOverride();
      registerDataCommands(program);
      await program.parseAsync(['data', 'download', 'retinamnist', '--dir', dir], { from: 'user' });
      assert.equal(printed[0], join(dir, 'retinamnist.npz'));
      await program.parseAsync(['data', 'info', join(dir, 'retinamnist.npz')], { from: 'user' });
      assert.match(printed[1], /train: 1080 samples, image 28 x 28 x 3, labels: class/);
      assert.match(printed[1], /grade 0 +486 +45\.0%/);
      assert.match(printed[1], /test: 400 samples/);
    } finally {
      log.mock.restore();
      error.mock.restore();
    }
  });
});
