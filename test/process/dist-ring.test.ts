// The ring: real sockets (TCP on 127.0.0.1, and the Unix sockets ranks on one host use by default),
// several ranks in this process, plus forked rank processes.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DistConfigError, PeerError } from '../../src/collective/errors.ts';
import { encodeHeader, FrameType } from '../../src/collective/frame.ts';
import {
  acceptHandshake,
  dialHandshake,
  expectMismatchedTokensRefused,
  frame,
  handshakeClient,
  helloPayload,
  onFrames,
} from '../helpers/ring-handshake.ts';
import { ReduceKernel } from '../../src/collective/reduce-kernel.ts';
import {
  type Collective,
  connectRing,
  listenForRing,
  LocalCollective,
  type RingOptions,
  type RingTransport,
  unixSocketPath,
} from '../../src/collective/ring.ts';
import { expectedMean, makeGradients } from '../fixtures/dist-data.ts';
import type { FromRingWorker, ToRingWorker } from '../fixtures/dist-ring-worker.ts';

// Small buckets and chunks so that modest arrays span many buckets, chunks and variable boundaries.
const SMALL = { bucketBytes: 4096, chunkBytes: 1024 } as const;
// Odd sizes, an empty variable, and some spanning several buckets (1024 floats per bucket).
const SIZES = [1, 3001, 0, 7, 1023, 2500, 5];

async function formRing(worldSize: number, extra: Partial<RingOptions> = {}): Promise<Collective[]> {
  const listeners = await Promise.all(
    Array.from({ length: worldSize }, (_, rank) => listenForRing({ rank, worldSize, log: () => undefined, ...SMALL, ...extra })),
  );
  const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
  return Promise.all(listeners.map((l) => l.connect(peers)));
}

function closeAll(ring: Collective[]): Promise<void[]> {
  return Promise.all(ring.map((c) => c.close()));
}

/** Forms a ring, runs `body` on it and closes it even when an assertion fails: open sockets would keep the file from ever ending. */
async function withRing(worldSize: number, extra: Partial<RingOptions>, body: (ring: Collective[]) => Promise<void>): Promise<void> {
  const ring = await formRing(worldSize, extra);
  try {
    await body(ring);
  } finally {
    await closeAll(ring);
  }
}

/** Every element within float32 rounding of the Float64 mean, and all ranks bit-identical. */
function checkMean(results: Float32Array[][], expected: Float64Array[]): void {
  for (let v = 0; v < expected.length; v++) {
    for (let i = 0; i < expected[v].length; i++) {
      const got = results[0][v][i];
      assert.ok(
        Math.abs(got - expected[v][i]) <= 1e-6 * (1 + Math.abs(expected[v][i])),
        `variable ${v}[${i}]: ${got} vs ${expected[v][i]}`,
      );
    }
    const bits0 = new Uint32Array(results[0][v].buffer, results[0][v].byteOffset, results[0][v].length);
    for (let r = 1; r < results.length; r++) {
      const bits = new Uint32Array(results[r][v].buffer, results[r][v].byteOffset, results[r][v].length);
      assert.deepEqual(bits, bits0, `rank ${r} differs from rank 0 in variable ${v}`);
    }
  }
}

for (const [worldSize, transport] of [
  [2, 'tcp'],
  [3, 'tcp'],
  [2, 'unix'],
  [3, 'unix'],
] as const) {
  describe(`ring of ${worldSize} ranks in one process over ${transport}`, () => {
    it('allReduceMean gives the mean, bit-identical on every rank, over several operations', () =>
      withRing(worldSize, { transport }, async (ring) => {
        for (const seed of [1, 2, 3]) {
          const buffers = ring.map((c) => makeGradients(seed, c.rank, SIZES));
          await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
          checkMean(buffers, expectedMean(seed, worldSize, SIZES));
        }
        const bytes = SIZES.reduce((a, n) => a + n * 4, 0) * 3;
        assert.equal(ring[1].stats().bytesReduced, bytes);
        assert.ok(ring[1].stats().lastAllReduceMs > 0);
      }));

    it('reports the time spent waiting for a late rank apart from the all-reduce as a whole', () =>
      withRing(worldSize, { transport }, async (ring) => {
        // Long enough that the event loop's delays on a loaded machine (other test files, 2 cores)
        // stay well inside the margins below.
        const lateMs = 500;
        const buffers = ring.map((c) => makeGradients(4, c.rank, SIZES));
        const late = ring.length - 1;
        const busyBefore = ring.map((c) => c.stats().busyMs);
        const calledAt = performance.now();
        // Rank `late` sends to rank late-1, which therefore waits for it.
        await Promise.all(
          ring.map((c, r) =>
            r === late ? new Promise((ok) => setTimeout(ok, lateMs)).then(() => c.allReduceMean(buffers[r])) : c.allReduceMean(buffers[r]),
          ),
        );
        checkMean(buffers, expectedMean(4, worldSize, SIZES));
        const waiting = ring[late - 1].stats();
        assert.ok(
          waiting.lastAllReduceWaitMs >= lateMs - 20,
          `rank ${late - 1} waited ${waiting.lastAllReduceWaitMs} ms for a rank ${lateMs} ms late`,
        );
        assert.ok(waiting.lastAllReduceWaitMs <= waiting.lastAllReduceMs);
        const lateStats = ring[late].stats();
        assert.ok(lateStats.lastAllReduceWaitMs < lateMs / 2, `the late rank itself waited ${lateStats.lastAllReduceWaitMs} ms`);
        // The waiting rank began at once; the late one only after its delay.
        assert.ok(
          waiting.lastAllReduceStartedAt >= calledAt && waiting.lastAllReduceStartedAt < calledAt + lateMs / 2,
          `the waiting rank began ${waiting.lastAllReduceStartedAt - calledAt} ms after the call`,
        );
        assert.ok(lateStats.lastAllReduceStartedAt >= calledAt + lateMs - 20);
        // Busy time counts the work of moving and summing bytes, never the wait: far below the
        // all-reduce's whole time, most of which is the late rank's delay (the work itself may run
        // inside the waiting window, as the neighbour on the other side sends, so it is not compared
        // with the time outside it).
        const busy = waiting.busyMs - busyBefore[late - 1]!;
        assert.ok(
          busy > 0 && busy < waiting.lastAllReduceMs - lateMs / 2,
          `rank ${late - 1} busy ${busy} ms of ${waiting.lastAllReduceMs}`,
        );
      }));

    it("broadcast copies the root rank's buffers to all ranks", () =>
      withRing(worldSize, { transport }, async (ring) => {
        const root = worldSize - 1;
        const buffers = ring.map((c) => makeGradients(10 + c.rank, c.rank, SIZES));
        const rootCopy = buffers[root].map((b) => b.slice());
        await Promise.all(ring.map((c, r) => c.broadcast(buffers[r], root)));
        for (const b of buffers) assert.deepEqual(b, rootCopy);
      }));
  });
}

describe('ring operations', () => {
  it('barrier resolves on no rank before the last rank enters it', () =>
    withRing(3, {}, async (ring) => {
      let lastEnteredAt = Infinity;
      const early = [ring[0].barrier(), ring[1].barrier()].map((p) => p.then(() => Date.now()));
      await new Promise((resolve) => setTimeout(resolve, 150));
      lastEnteredAt = Date.now();
      await ring[2].barrier();
      for (const resolvedAt of await Promise.all(early)) assert.ok(resolvedAt >= lastEnteredAt);
    }));

  it('connectRing forms a ring on fixed ports', async () => {
    const ports = await Promise.all([0, 1].map(() => freePort()));
    const peers = ports.map((port) => ({ host: '127.0.0.1', port }));
    const ring = await Promise.all([0, 1].map((rank) => connectRing({ rank, worldSize: 2, peers, log: () => undefined })));
    const buffers = ring.map((c) => [Float32Array.of(c.rank * 2 + 1, -c.rank)]);
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
    for (const b of buffers) assert.deepEqual([...b[0]], [2, -0.5]);
    await closeAll(ring);
  });

  it('a world of one needs no sockets and leaves buffers as they are', async () => {
    const local = await connectRing({ rank: 0, worldSize: 1, peers: [{ host: '127.0.0.1', port: 1 }] });
    assert.ok(local instanceof LocalCollective);
    const b = [Float32Array.of(1.5, -2)];
    await local.allReduceMean(b);
    await local.barrier();
    assert.deepEqual([...b[0]], [1.5, -2]);
    assert.equal(local.stats().bytesReduced, 8);
  });

  it('refuses to listen beyond loopback without a token, and accepts with one', async () => {
    const saved = process.env.MEDVAE_DIST_TOKEN;
    delete process.env.MEDVAE_DIST_TOKEN;
    try {
      await assert.rejects(listenForRing({ rank: 0, worldSize: 2, listen: { host: '0.0.0.0', port: 0 } }), DistConfigError);
      const listener = await listenForRing({ rank: 0, worldSize: 2, listen: { host: '0.0.0.0', port: 0 }, token: 's3cret' });
      assert.ok(listener.port > 0);
      await listener.close();
    } finally {
      if (saved !== undefined) process.env.MEDVAE_DIST_TOKEN = saved;
    }
  });

  it('fails to form, naming the refusing rank, when ranks hold different tokens', () => expectMismatchedTokensRefused(listenForRing));

  it('names a refusal that comes as a reset (the hello still unread) as it names a close', async () => {
    // A right neighbour that answers the hello by resetting the connection, as a refusing rank's
    // close does when the hello it did not read is still in its buffer.
    const resetting = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    const { port } = resetting.address() as net.AddressInfo;
    const listener = await listenForRing({ rank: 0, worldSize: 2, transport: 'tcp', timeoutMs: 3000, log: () => undefined });
    try {
      await assert.rejects(
        listener.connect([
          { host: '127.0.0.1', port: listener.port },
          { host: '127.0.0.1', port },
        ]),
        (e: Error) => e instanceof PeerError && e.rank === 1 && /closed the connection during the handshake/.test(e.message),
      );
    } finally {
      await listener.close();
      resetting.close();
    }
  });

  it('rejects a rank that stops taking part within timeoutMs, naming it', () =>
    withRing(2, { timeoutMs: 600 }, async (ring) => {
      const started = Date.now();
      await assert.rejects(
        ring[0].allReduceMean([new Float32Array(100)]),
        (e: Error) => e instanceof PeerError && e.rank === 1 && /timed out.*rank 1/.test(e.message),
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 550 && elapsed < 3000, `rejected after ${elapsed} ms`);
      await assert.rejects(ring[0].allReduceMean([new Float32Array(1)]), PeerError, 'later operations fail fast');
    }));
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Sends bytes from a raw client and resolves when the server has closed the connection. */
function rawClient(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.resume();
  });
}

/** A hello of protocol version 1, which sent the token itself: an old peer, refused by name. */
const oldHello = (): Buffer => frame(FrameType.Hello, helloPayload({ rank: 0, worldSize: 2, version: 1 }));

describe('hostile connections', () => {
  it('refuses bad token, wrong version, garbage and oversized frames with a logged reason; the ring still forms', async () => {
    const token = 'correct horse';
    const logs: string[][] = [[], []];
    const listeners = await Promise.all(
      [0, 1].map((rank) => listenForRing({ rank, worldSize: 2, token, ...SMALL, log: (l) => logs[rank].push(l) })),
    );
    const target = listeners[1].port; // rank 1 expects rank 0 to dial it
    await handshakeClient({ host: '127.0.0.1', port: target }, { rank: 0, worldSize: 2 }, 'wrong horse');
    await rawClient(target, oldHello());
    await rawClient(target, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(64, 'z')));
    await rawClient(target, encodeHeader({ payloadBytes: 2 ** 31, type: FrameType.Hello, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
    const reasons = logs[1].join('\n');
    assert.match(reasons, /refused .*bad token/);
    assert.match(reasons, /refused .*protocol version 1, this rank speaks 2/);
    assert.match(reasons, /refused .*(over the 1024-byte limit|not a medvae ring peer|expected a hello frame)/);
    assert.match(reasons, /refused .*2147483648 payload bytes, over the 1024-byte limit/);
    assert.equal(logs[1].filter((l) => l.includes('refused')).length, 4);

    const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
    const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
    const buffers = ring.map((c) => makeGradients(7, c.rank, SIZES));
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
    checkMean(buffers, expectedMean(7, 2, SIZES));
    await closeAll(ring);
  });

  it('fails the operation, naming the rank, when an authenticated peer sends an oversized frame', async () => {
    // A fake rank 0 that passes both handshakes, then sends a data frame bigger than maxFrameBytes.
    const token = 't';
    const logs: string[] = [];
    const rank1 = await listenForRing({ rank: 1, worldSize: 2, token, ...SMALL, maxFrameBytes: 65536, log: (l) => logs.push(l) });
    const fake = net.createServer((socket) => {
      acceptHandshake(socket, { rank: 0, worldSize: 2 }, token, () => {
        socket.write(encodeHeader({ payloadBytes: 1 << 30, type: FrameType.Data, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const fakePort = (fake.address() as net.AddressInfo).port;
    const dialIn = net.connect({ host: '127.0.0.1', port: rank1.port }, () => dialHandshake(dialIn, { rank: 0, worldSize: 2 }, token));
    dialIn.on('error', () => undefined);
    dialIn.resume();
    const collective = await rank1.connect([
      { host: '127.0.0.1', port: fakePort },
      { host: '127.0.0.1', port: rank1.port },
    ]);
    await assert.rejects(
      collective.allReduceMean([new Float32Array(10)]),
      (e: Error) => e instanceof PeerError && e.rank === 0 && /rank 0 sent a bad frame.*over the 65536-byte limit/.test(e.message),
    );
    assert.ok(logs.some((l) => l.includes('over the 65536-byte limit')));
    await collective.close();
    dialIn.destroy();
    fake.close();
  });
  it('a listener that closes mid-handshake refuses the dialler in its log and closes the connection', async () => {
    const logs: string[] = [];
    const listener = await listenForRing({ rank: 1, worldSize: 2, transport: 'tcp', log: (l) => logs.push(l) });
    const socket = net.connect({ host: '127.0.0.1', port: listener.port });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // The challenge coming back shows the handshake is under way on the listener's side.
    const challenged = new Promise<void>((resolve) => onFrames(socket, (type) => type === FrameType.Challenge && resolve()));
    socket.write(frame(FrameType.Hello, helloPayload({ rank: 0, worldSize: 2 })));
    await challenged;
    await listener.close();
    assert.deepEqual(
      logs.filter((l) => l.includes('refused')).map((l) => l.replace(/from \S+:/, 'from ADDR:')),
      ['rank 1 refused a connection from ADDR: this rank stopped listening before the handshake completed'],
    );
    await closed;
  });
});

/** Sends bytes to a rank's Unix socket and resolves when it has closed the connection. */
function rawUnixClient(path: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ path }, () => socket.write(bytes));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.resume();
  });
}

/** Leaves a socket file at `path` that nobody listens on, as a killed rank would. */
async function staleSocketAt(path: string): Promise<void> {
  const temporary = join(tmpdir(), `medvae-ring-test-stale-${process.pid}.sock`);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(temporary, resolve));
  // The server removes the path it listened on when it closes; moved away, the file outlives it.
  renameSync(temporary, path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function acceptedOver(logs: string[]): string[] {
  return logs.filter((l) => l.includes('accepted rank')).map((l) => (l.includes('from the unix socket') ? 'unix' : 'tcp'));
}

describe('unix socket transport', () => {
  it('auto uses a 0600 socket file for loopback peers and removes it once the ring forms; close() removes an unused one', async () => {
    const logs: string[][] = [[], []];
    const listeners = await Promise.all(
      [0, 1].map((rank) => listenForRing({ rank, worldSize: 2, transport: 'auto', ...SMALL, log: (l) => logs[rank].push(l) })),
    );
    for (const l of listeners) {
      assert.equal(l.socketPath, unixSocketPath('127.0.0.1', l.port));
      const stat = statSync(l.socketPath!);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o600);
    }
    const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
    const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
    for (const l of listeners) assert.equal(existsSync(l.socketPath!), false, `${l.socketPath} removed`);
    assert.deepEqual([...acceptedOver(logs[0]), ...acceptedOver(logs[1])], ['unix', 'unix']);
    const buffers = ring.map((c) => makeGradients(5, c.rank, SIZES));
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
    checkMean(buffers, expectedMean(5, 2, SIZES));
    await closeAll(ring);

    const unused = await listenForRing({ rank: 0, worldSize: 2, transport: 'unix', log: () => undefined });
    assert.ok(existsSync(unused.socketPath!));
    await unused.close();
    assert.equal(existsSync(unused.socketPath!), false);
  });

  it('refuses bad token, wrong version and garbage on the unix socket with a logged reason; the ring still forms over it', async () => {
    const token = 'correct horse';
    const logs: string[][] = [[], []];
    const listeners = await Promise.all(
      [0, 1].map((rank) => listenForRing({ rank, worldSize: 2, token, transport: 'unix', ...SMALL, log: (l) => logs[rank].push(l) })),
    );
    const target = listeners[1].socketPath!;
    await handshakeClient({ path: target }, { rank: 0, worldSize: 2 }, 'wrong horse');
    await rawUnixClient(target, oldHello());
    await rawUnixClient(target, encodeHeader({ payloadBytes: 2 ** 31, type: FrameType.Hello, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
    const reasons = logs[1].join('\n');
    assert.match(reasons, /refused a connection from the unix socket: bad token/);
    assert.match(reasons, /refused .*protocol version 1, this rank speaks 2/);
    assert.match(reasons, /refused .*2147483648 payload bytes, over the 1024-byte limit/);
    assert.equal(logs[1].filter((l) => l.includes('refused')).length, 3);

    const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
    const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
    assert.deepEqual([...acceptedOver(logs[0]), ...acceptedOver(logs[1])], ['unix', 'unix']);
    const buffers = ring.map((c) => makeGradients(8, c.rank, SIZES));
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
    checkMean(buffers, expectedMean(8, 2, SIZES));
    await closeAll(ring);
  });

  it('auto falls back to TCP past a stale socket file, towards a rank on tcp', async () => {
    const logs: string[][] = [[], []];
    const transports: RingTransport[] = ['auto', 'tcp'];
    const listeners = await Promise.all(
      transports.map((transport, rank) => listenForRing({ rank, worldSize: 2, transport, ...SMALL, log: (l) => logs[rank].push(l) })),
    );
    assert.equal(listeners[1].socketPath, null, 'a tcp rank offers no socket file');
    const stale = unixSocketPath('127.0.0.1', listeners[1].port);
    await staleSocketAt(stale);
    try {
      const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
      const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
      // Rank 0 dials rank 1 (past the stale file, over TCP); rank 1, on tcp, dials rank 0 over TCP.
      assert.deepEqual([...acceptedOver(logs[0]), ...acceptedOver(logs[1])], ['tcp', 'tcp']);
      const buffers = ring.map((c) => makeGradients(9, c.rank, SIZES));
      await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
      checkMean(buffers, expectedMean(9, 2, SIZES));
      await closeAll(ring);
    } finally {
      rmSync(stale, { force: true });
    }
  });

  it('a rank listening on a fixed port replaces its own stale socket file there', async () => {
    const ports = await Promise.all([0, 1].map(() => freePort()));
    for (const port of ports) await staleSocketAt(unixSocketPath('127.0.0.1', port));
    const logs: string[][] = [[], []];
    const listeners = await Promise.all(
      ports.map((port, rank) =>
        listenForRing({ rank, worldSize: 2, listen: { host: '127.0.0.1', port }, ...SMALL, log: (l) => logs[rank].push(l) }),
      ),
    );
    const peers = ports.map((port) => ({ host: '127.0.0.1', port }));
    const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
    assert.deepEqual([...acceptedOver(logs[0]), ...acceptedOver(logs[1])], ['unix', 'unix']);
    for (const port of ports) assert.equal(existsSync(unixSocketPath('127.0.0.1', port)), false);
    const buffers = ring.map((c) => [Float32Array.of(c.rank * 4, 1 - c.rank)]);
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r])));
    for (const b of buffers) assert.deepEqual([...b[0]], [2, 0.5]);
    await closeAll(ring);
  });

  it('rejects transport settings that cannot work, naming them', async () => {
    await assert.rejects(
      listenForRing({ rank: 0, worldSize: 2, transport: 'unix', token: 't', listen: { host: '0.0.0.0', port: 0 } }),
      (e: Error) => e instanceof DistConfigError && /transport 'unix' needs a loopback listen host/.test(e.message),
    );
    const saved = process.env.MEDVAE_DIST_TRANSPORT;
    process.env.MEDVAE_DIST_TRANSPORT = 'carrier-pigeon';
    try {
      await assert.rejects(
        listenForRing({ rank: 0, worldSize: 2 }),
        (e: Error) =>
          e instanceof DistConfigError && /MEDVAE_DIST_TRANSPORT must be one of tcp, unix, auto, got 'carrier-pigeon'/.test(e.message),
      );
    } finally {
      if (saved === undefined) delete process.env.MEDVAE_DIST_TRANSPORT;
      else process.env.MEDVAE_DIST_TRANSPORT = saved;
    }
    const listener = await listenForRing({ rank: 0, worldSize: 2, transport: 'unix', log: () => undefined });
    await assert.rejects(
      listener.connect([
        { host: '127.0.0.1', port: listener.port },
        { host: '10.0.0.2', port: 4000 },
      ]),
      (e: Error) => e instanceof DistConfigError && /reaches only this machine, but a peer is at 10.0.0.2/.test(e.message),
    );
    assert.equal(existsSync(listener.socketPath!), false, 'a failed connect still removes the socket file');
  });
});

describe('reduce kernel', () => {
  /** Float32 inputs covering signs, magnitudes, zeros, infinities and NaN. */
  function values(n: number, seed: number): Float32Array {
    const special = [0, -0, Infinity, -Infinity, NaN, 1e-40, 3.4e38, -1.5];
    return Float32Array.from({ length: n }, (_, i) =>
      (i + seed) % 11 === 0 ? special[(i + seed) % special.length] : Math.sin(i * 12.9898 + seed) * 10 ** ((i % 7) - 3),
    );
  }

  it('adds (and divides) every length and staging offset exactly as float32 arithmetic does', () => {
    const kernel = new ReduceKernel(64);
    for (const divisor of [undefined, 2, 3]) {
      for (let n = 0; n <= 37; n++) {
        for (const offset of [0, 1, 5, 64 - n]) {
          const received = values(64, n + offset);
          kernel.staging.set(received);
          const dst = values(n, 100 + n);
          // float32 rounding of the sum, then of the quotient: doubles round +, / of float32 inputs correctly.
          const expected = Float32Array.from(dst, (d, i) => {
            const sum = Math.fround(d + received[offset + i]);
            return divisor === undefined ? sum : Math.fround(sum / divisor);
          });
          kernel.addInto(dst, offset, divisor);
          for (let i = 0; i < n; i++) {
            assert.ok(
              Object.is(dst[i], expected[i]) || (Number.isNaN(dst[i]) && Number.isNaN(expected[i])),
              `n=${n} offset=${offset} divisor=${divisor} [${i}]: ${dst[i]} vs ${expected[i]}`,
            );
          }
        }
      }
    }
    assert.throws(() => kernel.addInto(new Float32Array(10), 60), RangeError);
  });
});

describe('ring of forked worker processes', () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  interface RankProcess {
    child: ChildProcess;
    next(kind: FromRingWorker['kind']): Promise<FromRingWorker>;
    send(m: ToRingWorker): void;
  }

  /** Forks worldSize ranks, gathers their ephemeral ports, hands out the peer list, waits for the ring. */
  async function spawnRing(worldSize: number, timeoutMs: number): Promise<RankProcess[]> {
    const ranks = Array.from({ length: worldSize }, (_, rank): RankProcess => {
      const child = fork(
        new URL('../fixtures/dist-ring-worker.ts', import.meta.url),
        [String(rank), String(worldSize), String(timeoutMs)],
        {
          execArgv: ['--import', 'tsx'],
          serialization: 'advanced',
        },
      );
      children.push(child);
      const inbox: FromRingWorker[] = [];
      const waiting: { kind: string; resolve: (m: FromRingWorker) => void }[] = [];
      child.on('message', (m: FromRingWorker) => {
        const i = waiting.findIndex((w) => w.kind === m.kind);
        if (i >= 0) waiting.splice(i, 1)[0].resolve(m);
        else inbox.push(m);
      });
      return {
        child,
        send: (m) => child.send(m),
        next: (kind) =>
          new Promise((resolve) => {
            const i = inbox.findIndex((m) => m.kind === kind);
            if (i >= 0) resolve(inbox.splice(i, 1)[0]);
            else waiting.push({ kind, resolve });
          }),
      };
    });
    const ports = await Promise.all(ranks.map(async (r) => ((await r.next('port')) as { port: number }).port));
    const peers = ports.map((port) => ({ host: '127.0.0.1', port }));
    for (const r of ranks) r.send({ kind: 'peers', peers });
    await Promise.all(ranks.map((r) => r.next('ready')));
    return ranks;
  }

  // One ring of processes for both claims: a fork through tsx costs about a second of CPU.
  it("3 processes all-reduce to the mean, bit-identical across processes; a killed peer then makes each survivor's allReduce reject within the timeout, naming the rank", async () => {
    const timeoutMs = 10_000;
    const ranks = await spawnRing(3, timeoutMs);
    const sizes = [40_001, 3, 9_999];
    for (const r of ranks) r.send({ kind: 'allreduce', seed: 42, sizes });
    const results = await Promise.all(ranks.map(async (r) => (await r.next('result')) as { buffers: Float32Array[] }));
    checkMean(
      results.map((m) => m.buffers),
      expectedMean(42, 3, sizes),
    );

    const [left, right, victim] = ranks;
    for (const r of [left, right]) r.send({ kind: 'allreduce', seed: 1, sizes: [100_000] });
    setTimeout(() => victim.child.kill('SIGKILL'), 100);
    for (const survivor of [left, right]) {
      const failed = (await survivor.next('failed')) as { name: string; message: string; ms: number };
      assert.equal(failed.name, 'PeerError');
      assert.match(failed.message, /rank 2/);
      assert.ok(failed.ms < timeoutMs / 2, `rejected after ${failed.ms} ms, long before the ${timeoutMs} ms timeout`);
    }
    for (const r of [left, right]) r.send({ kind: 'exit' });
    await Promise.all([left, right].map((r) => new Promise((resolve) => r.child.once('exit', resolve))));
  });
});
