// Seeded, bounded fuzzing of everything medvae reads from outside: npz/npy archives, PNG/JPEG
// images, YAML configs, Gleason CSV indexes and ring frames. A second per target here (the
// suite's CPU is shared); MEDVAE_FUZZ_SECONDS=60 (and MEDVAE_FUZZ_SEED) for a longer run. Each report is printed as a
// test diagnostic: cases, how they ended, the slowest case, peak memory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { crc32 } from 'node:zlib';
import { writeTinyNpz } from '../helpers/tiny-data.ts';
import { fuzzSeconds, runFuzz, type FuzzReport } from '../helpers/fuzz.ts';
import { frame, helloPayload, SMALL } from '../helpers/ring-handshake.ts';
import { listenForRing } from '../../src/collective/ring.ts';
import { openDataset } from '../../src/data/open.ts';
import { DatasetError } from '../../src/data/errors.ts';
import { parseNpyHeader } from '../../src/data/npy.ts';
import { decodeImageFile } from '../../src/data/decode.ts';
import { openGleason } from '../../src/data/gleason.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/validate.ts';
import { FrameReader, FrameType, type FrameHeader } from '../../src/collective/frame.ts';
import { ProtocolError } from '../../src/collective/errors.ts';
import {
  decodeAck,
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeAck,
  encodeChallenge,
  encodeProof,
  HANDSHAKE_MAX_BYTES,
} from '../../src/collective/handshake.ts';

const SECONDS = fuzzSeconds(1);
const SEED = Number(process.env.MEDVAE_FUZZ_SEED ?? 17);
const dir = mkdtempSync(join(tmpdir(), 'medvae-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function report(t: { diagnostic(message: string): void }, r: FuzzReport): void {
  t.diagnostic(`fuzz ${JSON.stringify(r)}`);
  assert.ok(r.cases > 0);
}

test('npz archives (stored, deflated, zip64): open, labels, first and last image', async (t) => {
  const corpus = (['stored', 'deflated', 'zip64'] as const).map((variant) => {
    const file = join(dir, `seed-${variant}.npz`);
    writeTinyNpz(file, { train: 6, val: 2, test: 2, size: 8, variant });
    return readFileSync(file);
  });
  const file = join(dir, 'case.npz');
  report(
    t,
    await runFuzz({
      name: 'npz',
      seed: SEED,
      seconds: SECONDS,
      corpus,
      named: [DatasetError],
      attempt: async (bytes) => {
        writeFileSync(file, bytes);
        const split = await openDataset({ format: 'medmnist', path: file }, 'train');
        try {
          await split.labels();
          if (split.length > 0) await split.read([0, split.length - 1]);
        } finally {
          await split.close();
        }
      },
    }),
  );
});

test('npy headers', async (t) => {
  const header = (text: string): Buffer => {
    const body = Buffer.from(text.padEnd(118, ' ') + '\n', 'latin1');
    const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
    pre.writeUInt16LE(body.length, 8);
    return Buffer.concat([pre, body]);
  };
  const corpus = [
    header("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 8, 8), }"),
    header("{'descr': '|u1', 'fortran_order': False, 'shape': (1080, 28, 28, 3), }"),
  ];
  report(
    t,
    await runFuzz({
      name: 'npy',
      seed: SEED,
      seconds: SECONDS / 2,
      corpus,
      named: [DatasetError],
      attempt: async (bytes) => {
        parseNpyHeader(bytes, 'fuzz.npy');
      },
    }),
  );
});

test('PNG and JPEG images: decoded, or refused as CorruptImageError (a counted skip in the loader)', async (t) => {
  const px = Buffer.alloc(16 * 16 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  const raw = { raw: { width: 16, height: 16, channels: 3 as const } };
  const png = await sharp(px, raw).png().toBuffer();
  const jpeg = await sharp(px, raw).jpeg().toBuffer();
  // Files that declare 16000 x 16000 pixels (PNG with its header CRC fixed): memory must stay bounded.
  const bigPng = Buffer.from(png);
  bigPng.writeUInt32BE(16000, 16);
  bigPng.writeUInt32BE(16000, 20);
  bigPng.writeUInt32BE(crc32(bigPng.subarray(12, 29)) >>> 0, 29);
  const bigJpeg = Buffer.from(jpeg);
  const sof = bigJpeg.indexOf(Buffer.from([0xff, 0xc0]));
  bigJpeg.writeUInt16BE(16000, sof + 5);
  bigJpeg.writeUInt16BE(16000, sof + 7);
  const corpus = [png, jpeg, await sharp(px, raw).greyscale().png().toBuffer(), bigPng, bigJpeg];
  const file = join(dir, 'case.img');
  report(
    t,
    await runFuzz({
      name: 'image',
      seed: SEED,
      seconds: SECONDS,
      corpus,
      named: [DatasetError],
      attempt: async (bytes) => {
        writeFileSync(file, bytes);
        await decodeImageFile(file);
      },
    }),
  );
});

test('YAML configs (ours and the PyTorch-VAE layout)', async (t) => {
  const configs = readdirSync(join(import.meta.dirname, '..', '..', 'configs')).filter((f) => f.endsWith('.yaml'));
  const pytorch =
    'model_params:\n  name: VanillaVAE\n  in_channels: 3\n  latent_dim: 128\nexp_params:\n  LR: 0.005\n  kld_weight: 0.00025\n  manual_seed: 1265\ntrainer_params:\n  max_epochs: 100\n';
  const aliases = 'a: &a [1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nmodel:\n  hidden_dims: *c\n';
  const corpus = [
    ...configs.map((f) => readFileSync(join(import.meta.dirname, '..', '..', 'configs', f))),
    Buffer.from(pytorch),
    Buffer.from(aliases),
  ];
  const file = join(dir, 'case.yaml');
  report(
    t,
    await runFuzz({
      name: 'yaml',
      seed: SEED,
      seconds: SECONDS,
      corpus,
      named: [ConfigError],
      attempt: async (bytes) => {
        writeFileSync(file, bytes);
        loadConfig({ file });
      },
    }),
  );
});

test('Gleason CSV indexes', async (t) => {
  const root = join(dir, 'gleason');
  mkdirSync(join(root, 'train'), { recursive: true });
  const jpeg = await sharp(Buffer.alloc(8 * 8 * 3, 90), { raw: { width: 8, height: 8, channels: 3 } })
    .jpeg()
    .toBuffer();
  const rows = ['image,height_biopsy,width_biopsy,class'];
  for (let i = 0; i < 4; i++) {
    writeFileSync(join(root, 'train', `b${i}_0.jpeg`), jpeg);
    rows.push(`b${i}_0.jpeg,512,512,${i % 4}`);
  }
  const corpus = [Buffer.from(rows.join('\n') + '\n'), Buffer.from(rows.join('\r\n'))];
  report(
    t,
    await runFuzz({
      name: 'gleason-csv',
      seed: SEED,
      seconds: SECONDS,
      corpus,
      named: [DatasetError],
      attempt: async (bytes) => {
        writeFileSync(join(root, 'train.csv'), bytes);
        const split = await openGleason(root, 'train');
        try {
          await split.labels();
        } finally {
          await split.close();
        }
      },
    }),
  );
});

/** Enough of a socket for FrameReader. */
class FakeSocket extends EventEmitter {
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
}

test('ring frames: handshake and data streams, cut anywhere', async (t) => {
  const nonce = Buffer.alloc(32, 3);
  const handshake = Buffer.concat([
    frame(FrameType.Hello, helloPayload({ rank: 0, worldSize: 2 })),
    frame(FrameType.Challenge, encodeChallenge(nonce)),
    frame(FrameType.Proof, encodeProof(nonce)),
    frame(FrameType.Ack, encodeAck({ rank: 1, worldSize: 2, mac: nonce })),
  ]);
  const data = Buffer.concat([frame(FrameType.Data, Buffer.alloc(256, 1)), frame(FrameType.Broadcast, Buffer.alloc(64, 2))]);
  const decoders: Record<number, (b: Buffer) => unknown> = {
    [FrameType.Hello]: decodeHello,
    [FrameType.Challenge]: decodeChallenge,
    [FrameType.Proof]: decodeProof,
    [FrameType.Ack]: decodeAck,
  };
  report(
    t,
    await runFuzz({
      name: 'ring-frames',
      seed: SEED,
      seconds: SECONDS,
      corpus: [handshake, data],
      named: [ProtocolError],
      attempt: async (bytes) => {
        const socket = new FakeSocket();
        let failure: Error | null = null;
        const reader = FrameReader.onDataEvents(socket as unknown as Socket, {
          maxPayloadBytes: HANDSHAKE_MAX_BYTES,
          onError: (e) => {
            failure = e;
          },
          onHeader: (h: FrameHeader) => {
            const decode = decoders[h.type];
            if (!decode && h.type !== FrameType.Data && h.type !== FrameType.Broadcast)
              throw new ProtocolError(`unknown frame type ${h.type}`);
            const pieces: Buffer[] = [];
            return { write: (p) => pieces.push(Buffer.from(p)), end: () => decode?.(Buffer.concat(pieces)) };
          },
        });
        // Delivered in uneven pieces, as a socket would.
        for (let at = 0; at < bytes.length;) {
          const n = 1 + ((at * 7919) % 97);
          socket.emit('data', Buffer.from(bytes.subarray(at, at + n)));
          at += n;
        }
        reader.stop();
        if (failure) throw failure;
      },
    }),
  );
});

test('a listening rank fed mutated handshakes refuses each with a logged reason, and its ring still forms', async (t) => {
  const logs: string[] = [];
  const listeners = await Promise.all(
    [0, 1].map((rank) =>
      listenForRing({
        rank,
        worldSize: 2,
        token: 'fuzz',
        transport: 'tcp',
        ...SMALL,
        timeoutMs: 3000,
        log: (l) => {
          if (rank === 1) logs.push(l);
        },
      }),
    ),
  );
  const transcript = Buffer.concat([
    frame(FrameType.Hello, helloPayload({ rank: 0, worldSize: 2 })),
    frame(FrameType.Proof, encodeProof(Buffer.alloc(32, 9))),
  ]);
  const r = await runFuzz({
    name: 'ring-handshake',
    seed: SEED,
    seconds: SECONDS / 2,
    corpus: [transcript],
    named: [ProtocolError],
    attempt: (bytes) =>
      new Promise<void>((resolve, reject) => {
        const before = logs.length;
        const socket = net.connect({ host: '127.0.0.1', port: listeners[1]!.port }, () => socket.end(bytes));
        socket.on('error', () => undefined);
        socket.on('close', () => (logs.length > before ? reject(new ProtocolError(logs.at(-1)!)) : resolve()));
        socket.resume();
      }),
  });
  report(t, r);
  assert.equal(r.outcomes.accepted ?? 0, 0, 'no mutated transcript got in');
  assert.ok(
    logs.every((l) => l.includes('refused a connection')),
    logs.find((l) => !l.includes('refused')),
  );
  const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
  const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
  const buffers = ring.map((c) => [new Float32Array([c.rank, 2])]);
  await Promise.all(ring.map((c, i) => c.allReduceMean(buffers[i]!)));
  assert.deepEqual([...buffers[0]![0]!], [0.5, 2]);
  await Promise.all(ring.map((c) => c.close()));
});
