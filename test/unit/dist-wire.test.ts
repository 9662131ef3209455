// The distributed wire, in process on loopback: frames, the handshake codec and the ring's cutting
// plan; the token that never crosses the wire; TLS on the ring; the agents' control channel; and
// the multi-host rendezvous with the node layout it starts from. One process for all, as a process
// costs about a second to start: each describe block below keeps its hooks and state to itself.
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import net, { connect, createServer, type Socket } from 'node:net';
import { after, describe, it, test } from 'node:test';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { encodeHeader, type FrameHeader, FrameReader, FrameType, HEADER_BYTES, type PayloadSink } from '../../src/collective/frame.ts';
import {
  decodeHello,
  encodeHello,
  handshakeMac,
  helloRefusal,
  isLoopbackHost,
  macsMatch,
  NONCE_BYTES,
  PROTOCOL_VERSION,
} from '../../src/collective/handshake.ts';
import { FlatLayout, RingPlan } from '../../src/collective/bucket-plan.ts';
import { DistConfigError, PeerError } from '../../src/collective/errors.ts';
import { type Collective, listenForRing } from '../../src/collective/ring.ts';
import { ControlChannel } from '../../src/launch/control-channel.ts';
import { expandHostlist, resolveNodeLayout } from '../../src/launch/scheduler-env.ts';
import { differingKeys, flattenSettings } from '../../src/launch/rendezvous-protocol.ts';
import { RendezvousServer } from '../../src/launch/rendezvous-server.ts';
import { type JoinOptions, RendezvousSession } from '../../src/launch/rendezvous-client.ts';
import { acceptHandshake, SMALL } from '../helpers/ring-handshake.ts';
import { recordingProxy } from '../helpers/recording-proxy.ts';
import { tempDir } from '../helpers/temp-dir.ts';

describe("dist-frame: framing, the handshake codec and the ring's cutting plan, without sockets", () => {
  /** Just enough of a socket for FrameReader: 'data' events and pause/resume bookkeeping. */
  class FakeSocket extends EventEmitter {
    paused = false;
    pause(): this {
      this.paused = true;
      return this;
    }
    resume(): this {
      this.paused = false;
      return this;
    }
  }

  function frame(type: number, opSeq: number, payload: Buffer): Buffer {
    return Buffer.concat([encodeHeader({ payloadBytes: payload.length, type, ringStep: 1, opSeq, bucket: 2, chunk: 3 }), payload]);
  }

  describe('FrameReader', () => {
    it('reassembles frames however the stream is split, handing payload pieces by reference', () => {
      const payloads = [Buffer.from('first payload'), Buffer.alloc(0), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9])];
      const stream = Buffer.concat(payloads.map((p, i) => frame(FrameType.Data, i, p)));
      for (const pieceBytes of [1, 3, HEADER_BYTES + 1, stream.length]) {
        const socket = new FakeSocket();
        const got: { header: FrameHeader; payload: Buffer }[] = [];
        FrameReader.onDataEvents(socket as unknown as Socket, {
          maxPayloadBytes: 1024,
          onError: (e) => assert.fail(e),
          onHeader: (header) => {
            const pieces: Buffer[] = [];
            return { write: (p) => pieces.push(p), end: () => got.push({ header, payload: Buffer.concat(pieces) }) };
          },
        });
        for (let at = 0; at < stream.length; at += pieceBytes) socket.emit('data', stream.subarray(at, at + pieceBytes));
        assert.deepEqual(
          got.map((g) => g.payload),
          payloads,
          `pieces of ${pieceBytes} bytes`,
        );
        assert.deepEqual(
          got.map((g) => g.header.opSeq),
          [0, 1, 2],
        );
        assert.deepEqual(got[2].header, { payloadBytes: 9, type: FrameType.Data, ringStep: 1, opSeq: 2, bucket: 2, chunk: 3 });
      }
    });

    it("holds a frame the handler answers 'wait' to, pausing the socket, and delivers it on resume", () => {
      const socket = new FakeSocket();
      let ready = false;
      const got: string[] = [];
      const reader = FrameReader.onDataEvents(socket as unknown as Socket, {
        maxPayloadBytes: 1024,
        onError: (e) => assert.fail(e),
        onHeader: (): PayloadSink | 'wait' => {
          if (!ready) return 'wait';
          const pieces: Buffer[] = [];
          return { write: (p) => pieces.push(p), end: () => got.push(Buffer.concat(pieces).toString()) };
        },
      });
      socket.emit('data', Buffer.concat([frame(FrameType.Data, 0, Buffer.from('a')), frame(FrameType.Data, 0, Buffer.from('bc'))]));
      assert.equal(socket.paused, true);
      assert.deepEqual(got, []);
      ready = true;
      reader.resume();
      assert.equal(socket.paused, false);
      assert.deepEqual(got, ['a', 'bc']);
    });

    it('refuses an oversized frame from its header alone and stops reading', () => {
      const socket = new FakeSocket();
      const errors: Error[] = [];
      let headers = 0;
      FrameReader.onDataEvents(socket as unknown as Socket, {
        maxPayloadBytes: 100,
        onError: (e) => errors.push(e),
        onHeader: () => {
          headers += 1;
          return { write: () => undefined, end: () => undefined };
        },
      });
      socket.emit('data', encodeHeader({ payloadBytes: 101, type: FrameType.Data, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
      socket.emit('data', frame(FrameType.Data, 0, Buffer.from('later')));
      assert.equal(headers, 0);
      assert.equal(errors.length, 1);
      assert.match(errors[0].message, /announces 101 payload bytes, over the 100-byte limit/);
    });
  });

  describe('handshake codec', () => {
    const nonce = Buffer.alloc(NONCE_BYTES, 7);
    const hello = { version: PROTOCOL_VERSION, rank: 2, worldSize: 3, bucketBytes: 4096, chunkBytes: 1024, nonce };
    const expectation = { rank: 2, worldSize: 3, bucketBytes: 4096, chunkBytes: 1024 };

    it('round-trips a hello and accepts exactly the expected peer', () => {
      assert.deepEqual(decodeHello(encodeHello(hello)), hello);
      assert.equal(helloRefusal(hello, expectation), null);
      assert.match(helloRefusal({ ...hello, rank: 1 }, expectation) ?? '', /rank 1 connected, expected rank 2/);
      assert.match(helloRefusal({ ...hello, chunkBytes: 2048 }, expectation) ?? '', /chunkBytes 2048/);
    });

    it('proofs: the same token, hello and nonce give the same MAC; another token, role, hello or nonce does not', () => {
      const bytes = encodeHello(hello);
      const other = Buffer.alloc(NONCE_BYTES, 8);
      const mac = handshakeMac('tök', 'dialler', bytes, other);
      assert.ok(macsMatch(mac, handshakeMac('tök', 'dialler', bytes, other)));
      assert.ok(!macsMatch(mac, handshakeMac('tok', 'dialler', bytes, other)));
      assert.ok(!macsMatch(mac, handshakeMac('tök', 'acceptor', bytes, other)));
      assert.ok(!macsMatch(mac, handshakeMac('tök', 'dialler', encodeHello({ ...hello, nonce: other }), other)));
      assert.ok(!macsMatch(mac, handshakeMac('tök', 'dialler', bytes, nonce)));
      assert.ok(!macsMatch(mac, mac.subarray(0, 16)));
    });

    it('names a wrong version, a wrong magic and a wrong length', () => {
      const v9 = encodeHello(hello);
      v9.writeUInt16LE(9, 4);
      assert.throws(() => decodeHello(v9), /protocol version 9, this rank speaks 2/);
      assert.throws(() => decodeHello(Buffer.from('not a hello at all, just text')), /not a medvae ring peer/);
      assert.throws(() => decodeHello(encodeHello(hello).subarray(0, 26)), /hello is 26 bytes, expected 56/);
    });

    it('knows loopback hosts', () => {
      for (const h of ['127.0.0.1', '127.3.2.1', '::1', 'localhost']) assert.equal(isLoopbackHost(h), true, h);
      for (const h of ['0.0.0.0', '::', '10.0.0.5', 'example.org']) assert.equal(isLoopbackHost(h), false, h);
    });
  });

  describe('ring plan', () => {
    it('covers every element of every bucket exactly once, split into w segments of near-equal size', () => {
      for (const [total, w, bucket, chunk] of [
        [10_007, 3, 1000, 64],
        [5, 4, 1024, 256],
        [0, 2, 16, 4],
        [4096, 2, 1024, 1024],
      ]) {
        const plan = new RingPlan(total, w, bucket, chunk);
        const seen = new Uint8Array(total);
        let frames = 0;
        for (let b = 0; b < plan.bucketCount; b++) {
          const segmentSizes: number[] = [];
          for (let k = 0; k < w; k++) {
            const chunks = plan.segmentChunks(b, k);
            assert.ok(chunks.length >= 1, 'every segment has a frame, even an empty one');
            let size = 0;
            for (const c of chunks) {
              assert.ok(c.end - c.start <= chunk);
              for (let i = c.start; i < c.end; i++) seen[i] += 1;
              size += c.end - c.start;
            }
            segmentSizes.push(size);
            frames += chunks.length;
          }
          assert.ok(Math.max(...segmentSizes) - Math.min(...segmentSizes) <= 1, `bucket ${b}: ${segmentSizes}`);
        }
        assert.ok(
          seen.every((x) => x === 1),
          `total ${total}`,
        );
        assert.equal(
          frames,
          Array.from({ length: w }, (_, k) => plan.framesOfSegment(k)).reduce((a, b) => a + b, 0),
        );
      }
    });

    it('FlatLayout walks a range across variable boundaries, skipping empty variables', () => {
      const buffers = [new Float32Array([0, 1, 2]), new Float32Array(0), new Float32Array([3, 4]), new Float32Array([5, 6, 7, 8])];
      const layout = new FlatLayout(buffers);
      assert.equal(layout.totalElements, 9);
      const pieces: number[][] = [];
      layout.forEachPiece({ start: 2, end: 7 }, (p) => pieces.push([...p]));
      assert.deepEqual(pieces, [[2], [3, 4], [5, 6]]);
      pieces.length = 0;
      layout.forEachPiece({ start: 3, end: 3 }, (p) => pieces.push([...p]));
      assert.deepEqual(pieces, []);
    });
  });
});

describe('dist-token: the shared token never crosses the wire', () => {
  // The ring's shared secret never crosses the wire: ranks prove they hold MEDVAE_DIST_TOKEN by
  // HMAC-SHA256 of fresh nonces, both ways. Traffic is captured by a TCP proxy between real ranks.

  const TOKEN = 'medvae-test-secret-7f3a9c';

  describe('ring authentication', () => {
    it('a ring forms and reduces through a recording proxy, and the token bytes never appear in the traffic', async () => {
      const listeners = await Promise.all(
        [0, 1].map((rank) => listenForRing({ rank, worldSize: 2, token: TOKEN, transport: 'tcp', ...SMALL, log: () => undefined })),
      );
      const proxies = await Promise.all(listeners.map((l) => recordingProxy(l.port)));
      const peers = proxies.map((p) => ({ host: '127.0.0.1', port: p.port }));
      const ring: Collective[] = await Promise.all(listeners.map((l) => l.connect(peers)));
      const buffers = ring.map((c) => [Float32Array.from({ length: 3000 }, (_, i) => i * (c.rank + 1))]);
      await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r]!)));
      assert.equal(buffers[0]![0]![10], 15);
      await Promise.all(ring.map((c) => c.close()));
      for (const p of proxies) p.close();

      const traffic = Buffer.concat(proxies.flatMap((p) => p.captured.flat()));
      assert.ok(traffic.length > 2 * 3000 * 4, `captured ${traffic.length} bytes`);
      const magic = Buffer.alloc(4);
      magic.writeUInt32LE(0x5244564d);
      assert.ok(traffic.includes(magic), 'the handshake went through the proxy');
      for (const form of [Buffer.from(TOKEN, 'utf8'), Buffer.from(TOKEN, 'utf16le'), Buffer.from(TOKEN).subarray(0, 8)]) {
        assert.equal(traffic.indexOf(form), -1, `token bytes (${form.length}) on the wire`);
      }
    });

    it('a replayed transcript of a genuine dialler is refused: the challenge is fresh every time', async () => {
      const logs: string[] = [];
      const listeners = await Promise.all(
        [0, 1].map((rank) =>
          listenForRing({
            rank,
            worldSize: 2,
            token: TOKEN,
            transport: 'tcp',
            ...SMALL,
            log: (l) => {
              if (rank === 1) logs.push(l);
            },
          }),
        ),
      );
      const proxy = await recordingProxy(listeners[1]!.port);
      const peers = [
        { host: '127.0.0.1', port: listeners[0]!.port },
        { host: '127.0.0.1', port: proxy.port },
      ];
      const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
      await Promise.all(ring.map((c) => c.close()));
      proxy.close();
      // What rank 0 sent rank 1 up to and including its proof: header + hello, header + proof.
      const sent = Buffer.concat(proxy.captured[0]!).subarray(0, 20 + 56 + 20 + 40);

      const fresh = await listenForRing({ rank: 1, worldSize: 2, token: TOKEN, transport: 'tcp', ...SMALL, log: (l) => logs.push(l) });
      await new Promise<void>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: fresh.port }, () => socket.write(sent));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve());
        socket.resume();
      });
      await fresh.close();
      assert.ok(
        logs.some((l) =>
          /refused a connection from .*: bad token \(claimed rank 0\): its proof does not match this rank's MEDVAE_DIST_TOKEN/.test(l),
        ),
        logs.join('\n'),
      );
    });

    it('a dialler refuses an acceptor that cannot prove the token, naming it', async () => {
      const impostor = net.createServer((socket) => {
        acceptHandshake(socket, { rank: 1, worldSize: 2 }, 'a guess', () => undefined);
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
      const rank0 = await listenForRing({
        rank: 0,
        worldSize: 2,
        token: TOKEN,
        transport: 'tcp',
        ...SMALL,
        timeoutMs: 5000,
        log: () => undefined,
      });
      const peers = [
        { host: '127.0.0.1', port: rank0.port },
        { host: '127.0.0.1', port: (impostor.address() as net.AddressInfo).port },
      ];
      await assert.rejects(
        rank0.connect(peers),
        (e: Error) => e instanceof PeerError && e.rank === 1 && /does not prove it holds this rank's MEDVAE_DIST_TOKEN/.test(e.message),
      );
      await rank0.close();
      impostor.close();
    });
  });
});

describe('dist-tls: the ring over TLS', () => {
  // The ring's TCP links encrypted with TLS 1.3 keyed by the shared token (MEDVAE_DIST_TLS=1): a real
  // ring reduces correctly through a recording proxy that sees neither gradient bytes nor frame
  // headers, and a rank with another token fails the TLS handshake with a logged reason.

  describe('ring over TLS', () => {
    it('reduces correctly, and the wire carries neither the gradients nor the handshake in the clear', async () => {
      const listeners = await Promise.all(
        [0, 1].map((rank) =>
          listenForRing({ rank, worldSize: 2, token: 'tls-test', tls: true, transport: 'tcp', ...SMALL, log: () => undefined }),
        ),
      );
      const proxies = await Promise.all(listeners.map((l) => recordingProxy(l.port)));
      const ring = await Promise.all(listeners.map((l) => l.connect(proxies.map((p) => ({ host: '127.0.0.1', port: p.port })))));
      const buffers = ring.map((c) => [Float32Array.from({ length: 5000 }, (_, i) => (c.rank + 1) * (i % 251) + 0.25)]);
      const sent = Buffer.from(buffers[1]![0]!.buffer.slice(0, 64));
      await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r]!)));
      assert.equal(buffers[0]![0]![10], 1.5 * 10 + 0.25);
      assert.deepEqual(buffers[0]![0], buffers[1]![0]);
      await Promise.all(ring.map((c) => c.close()));
      for (const p of proxies) p.close();
      const traffic = Buffer.concat(proxies.flatMap((p) => p.captured.flat()));
      assert.ok(traffic.length > 5000 * 4, `captured ${traffic.length} bytes`);
      const magic = Buffer.alloc(4);
      magic.writeUInt32LE(0x5244564d);
      assert.equal(traffic.indexOf(magic), -1, 'no handshake frame in the clear');
      assert.equal(traffic.indexOf(sent), -1, 'no gradient bytes in the clear');
    });

    it('a rank with another token fails the TLS handshake: refused with a logged reason, the dialler names the rank', async () => {
      const logs: string[] = [];
      const listeners = await Promise.all(
        ['alpha', 'beta'].map((token, rank) =>
          listenForRing({ rank, worldSize: 2, token, tls: true, transport: 'tcp', ...SMALL, timeoutMs: 4000, log: (l) => logs.push(l) }),
        ),
      );
      const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
      const outcomes = await Promise.allSettled(listeners.map((l) => l.connect(peers)));
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        assert.ok((outcome as PromiseRejectedResult).reason instanceof PeerError);
      }
      assert.ok(
        logs.some((l) => /refused a connection from .*TLS handshake failed/.test(l)),
        logs.join('\n'),
      );
    });

    it('TLS without a token is refused before listening', async () => {
      const saved = process.env.MEDVAE_DIST_TOKEN;
      delete process.env.MEDVAE_DIST_TOKEN;
      try {
        await assert.rejects(
          listenForRing({ rank: 0, worldSize: 2, tls: true }),
          (e: Error) => e instanceof DistConfigError && /TLS on the ring needs a shared token/.test(e.message),
        );
      } finally {
        if (saved !== undefined) process.env.MEDVAE_DIST_TOKEN = saved;
      }
    });
  });
});

describe("dist-control-channel: how the agents' control connection says its peer is gone", () => {
  const sockets: Socket[] = [];
  after(() => sockets.forEach((s) => s.destroy()));

  /** A connected pair on loopback, the channel's socket and the peer's (destroyed after the tests, whatever happens). */
  async function pair(): Promise<{ ours: Socket; peer: Socket }> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const ours = connect(port, '127.0.0.1');
    await once(ours, 'connect');
    const [peer] = await accepted;
    server.close();
    sockets.push(ours, peer);
    return { ours, peer };
  }

  test('a peer that closes and a peer that resets the connection (killed with bytes unread) are both "connection closed"', async () => {
    const closing = await pair();
    const a = new ControlChannel(closing.ours, 10_000);
    closing.peer.end();
    assert.equal(await a.closedBy, 'connection closed');

    const resetting = await pair();
    const b = new ControlChannel(resetting.ours, 10_000);
    resetting.peer.resetAndDestroy();
    assert.equal(await b.closedBy, 'connection closed');
  });

  test('a peer that sends something other than JSON lines is named for it', async () => {
    const p = await pair();
    const c = new ControlChannel(p.ours, 10_000);
    p.peer.write('GET / HTTP/1.1\n');
    assert.equal(await c.closedBy, 'sent a line that is not JSON (not a medvae agent?)');
  });
});

describe("dist-rendezvous: node layout and node 0's rendezvous", () => {
  // The multi-host control plane without processes or namespaces: where a node stands (flags, torchrun's
  // variables, Kubernetes, Slurm) and node 0's rendezvous, in process on loopback.

  test('Slurm host lists expand as scontrol show hostnames does', () => {
    assert.deepEqual(expandHostlist('node[01-03,7],gpu-a[1-2]'), ['node01', 'node02', 'node03', 'node7', 'gpu-a1', 'gpu-a2']);
    assert.deepEqual(expandHostlist('login1'), ['login1']);
    assert.deepEqual(expandHostlist('r[1-2]n[09-10]'), ['r1n09', 'r1n10', 'r2n09', 'r2n10']);
    assert.deepEqual(expandHostlist('a[8-10]'), ['a8', 'a9', 'a10']);
    assert.throws(() => expandHostlist('node[1-3'), /SLURM_JOB_NODELIST 'node\[1-3': a '\[' without its '\]'/);
    assert.throws(() => expandHostlist('node[3-1]'), /range 3-1 runs backwards/);
    assert.throws(() => expandHostlist('node[a]'), /'a' is not a number or a range a-b/);
  });

  test('the node layout: defaults, torchrun variables, flags over them (with one line saying so)', () => {
    assert.deepEqual(resolveNodeLayout({}, {}), {
      nnodes: 1,
      nodeRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      scheduler: null,
      notes: [],
    });
    const env = { NNODES: '3', NODE_RANK: '2', MASTER_ADDR: 'head', MASTER_PORT: '1234' };
    assert.deepEqual(resolveNodeLayout({}, env), {
      nnodes: 3,
      nodeRank: 2,
      masterAddr: 'head',
      masterPort: 1234,
      scheduler: null,
      notes: [],
    });
    const layout = resolveNodeLayout({ nodeRank: '1', masterPort: '1234' }, env);
    assert.equal(layout.nodeRank, 1);
    assert.deepEqual(layout.notes, ['--node-rank 1 overrides NODE_RANK=2']);
    assert.throws(() => resolveNodeLayout({ nnodes: '2', nodeRank: '2' }, {}), /--node-rank=2 is not below the node count 2 \(--nnodes\)/);
    assert.throws(() => resolveNodeLayout({}, { NNODES: 'two' }), /NNODES must be an integer in 1\.\.255, got 'two'/);
    assert.throws(() => resolveNodeLayout({ masterPort: '70000' }, {}), /--master-port must be an integer in 1\.\.65535, got '70000'/);
  });

  test('a Kubernetes Indexed Job: the completion index is the node rank, pod 0 behind the headless Service is node 0', () => {
    const env = { JOB_COMPLETION_INDEX: '1', HOSTNAME: 'medvae-train-1', NNODES: '2', MEDVAE_K8S_SERVICE: 'medvae-nodes' };
    const layout = resolveNodeLayout({}, env);
    assert.deepEqual(layout, {
      nnodes: 2,
      nodeRank: 1,
      masterAddr: 'medvae-train-0.medvae-nodes',
      masterPort: 29500,
      scheduler: 'kubernetes',
      notes: [],
    });
    assert.equal(resolveNodeLayout({}, { ...env, MEDVAE_K8S_SERVICE: undefined }).masterAddr, 'medvae-train-0.medvae-train');
    assert.throws(
      () => resolveNodeLayout({}, { ...env, NODE_RANK: '0' }),
      /NODE_RANK=0 but JOB_COMPLETION_INDEX=1: the environment disagrees on --node-rank; unset one or pass --node-rank/,
    );
  });

  test('Slurm: node id, node count and the first host of the job', () => {
    const env = {
      SLURM_JOB_ID: '42',
      SLURM_NODEID: '2',
      SLURM_PROCID: '2',
      SLURM_NNODES: '4',
      SLURM_JOB_NODELIST: 'gpu[07-10]',
      MASTER_PORT: '29600',
    };
    assert.deepEqual(resolveNodeLayout({}, env), {
      nnodes: 4,
      nodeRank: 2,
      masterAddr: 'gpu07',
      masterPort: 29600,
      scheduler: 'slurm',
      notes: [],
    });
    assert.throws(
      () => resolveNodeLayout({}, { ...env, SLURM_PROCID: '5' }),
      /SLURM_PROCID=5 but SLURM_NODEID=2: start one medvae-dist per node \(srun --ntasks-per-node=1\)/,
    );
    assert.throws(() => resolveNodeLayout({}, { ...env, NNODES: '2' }), /NNODES=2 but SLURM_NNODES=4/);
    assert.equal(resolveNodeLayout({ nnodes: '2', nodeRank: '1' }, env).notes.length, 2);
  });

  test('settings are compared key by key', () => {
    const a = flattenSettings({ train: { lr: 0.005, batch_size: 8 }, data: { path: '/d' } });
    assert.deepEqual(a, { 'train.lr': '0.005', 'train.batch_size': '8', 'data.path': '"/d"' });
    const b = flattenSettings({ train: { lr: 0.001, batch_size: 8 }, model: { name: 'vae' } });
    assert.deepEqual(differingKeys(a, b, 0, 3), [
      'data.path (node 0: "/d", node 3: unset)',
      'model.name (node 0: unset, node 3: "vae")',
      'train.lr (node 0: 0.005, node 3: 0.001)',
    ]);
  });

  let nextPort = 29_700 + (process.pid % 200);

  async function withServer(
    nnodes: number,
    rdzvTimeoutMs: number,
    body: (join: (node: number, o?: Partial<JoinOptions>) => Promise<RendezvousSession>, runDir: string) => Promise<void>,
  ): Promise<string[]> {
    const runDir = tempDir('medvae-rdzv-');
    const port = nextPort++;
    const settings = { 'train.lr': '0.005' };
    const log: string[] = [];
    const server = await RendezvousServer.start({
      bindHost: '127.0.0.1',
      masterAddr: '127.0.0.1',
      port,
      token: 't',
      nnodes,
      runDir,
      reference: { settings },
      rdzvTimeoutMs,
      liveTimeoutMs: 2000,
      log: (l) => log.push(l),
      resume: () => null,
    });
    const joinAs = (node: number, o: Partial<JoinOptions> = {}): Promise<RendezvousSession> =>
      RendezvousSession.join({
        masterAddr: '127.0.0.1',
        masterPort: port,
        token: 't',
        runDir,
        rdzvTimeoutMs,
        liveTimeoutMs: 2000,
        log: () => undefined,
        request: { nodeRank: node, nnodes, localWorldSize: 2, hostname: `host${node}`, settings },
        ...o,
      });
    try {
      await body(joinAs, runDir);
    } finally {
      await server.close(0);
    }
    assert.deepEqual(readdirSync(runDir), [], 'the probe file is removed');
    return log;
  }

  test('the rendezvous assigns node-major ranks and hands every node the peers, Unix sockets included', async () => {
    await withServer(2, 10_000, async (joinAs) => {
      const [a, b] = await Promise.all([joinAs(0), joinAs(1)]);
      assert.deepEqual([a.assignment.rankOffset, b.assignment.rankOffset, a.assignment.worldSize], [0, 2, 4]);
      const [pa, pb] = await Promise.all([
        a.exchangePorts([
          { port: 1000, socketPath: '/tmp/s0' },
          { port: 1001, socketPath: null },
        ]),
        b.exchangePorts([
          { port: 2000, socketPath: null },
          { port: 2001, socketPath: null },
        ]),
      ]);
      assert.deepEqual(pa, pb);
      assert.deepEqual(
        pa.map((p) => [p.node, p.port, p.socketPath]),
        [
          [0, 1000, '/tmp/s0'],
          [0, 1001, undefined],
          [1, 2000, undefined],
          [1, 2001, undefined],
        ],
      );
      // One node fails: the other is told why.
      a.fail('worker rank 1 died');
      assert.match(await b.stopped, /^stopped by node 0: node 0 \(127\.0\.0\.1\): worker rank 1 died$/);
    });
  });

  test('a node missing after --rdzv-timeout is named, on node 0 and on the nodes that joined', async () => {
    const log = await withServer(3, 800, async (joinAs) => {
      await assert.rejects(joinAs(0), /rendezvous incomplete after 0\.8 s \(--rdzv-timeout\): node\(s\) 1, 2 did not join \(joined: 0\)/);
    });
    assert.match(log.join('\n'), /node\(s\) 1, 2 did not join/);
  });

  test('a node that cannot see the run directory is refused at the rendezvous', async () => {
    await withServer(2, 10_000, async (joinAs) => {
      const elsewhere = tempDir('medvae-rdzv-other-');
      const zero = assert.rejects(joinAs(0), /cannot see the run directory/);
      await assert.rejects(
        joinAs(1, { runDir: elsewhere }),
        /node 1 \(host1, 127\.0\.0\.1\) cannot see the run directory .* that node 0 writes \(its probe file \.medvae-rdzv-[0-9a-f]+ is missing there\): mount the same shared volume at the same path on every node/,
      );
      await zero;
    });
  });

  test('nobody at the master address: the joining node names the address and the variables to check', async () => {
    await assert.rejects(
      RendezvousSession.join({
        masterAddr: '127.0.0.1',
        masterPort: 1,
        token: 't',
        runDir: tmpdir(),
        rdzvTimeoutMs: 300,
        liveTimeoutMs: 1000,
        log: () => undefined,
        request: { nodeRank: 1, nnodes: 2, localWorldSize: 1, hostname: 'h', settings: {} },
      }),
      /node 1 could not reach node 0's rendezvous at 127\.0\.0\.1:1 within 0\.3 s \(--rdzv-timeout\): is node 0's agent running, and are --master-addr\/--master-port \(MASTER_ADDR\/MASTER_PORT\) right\?/,
    );
  });

  test('Ctrl-C or SIGTERM while waiting for the other nodes ends the wait at once', async () => {
    await withServer(2, 10_000, async (joinAs) => {
      const stop = new AbortController();
      const started = Date.now();
      setTimeout(() => stop.abort(), 200);
      await assert.rejects(
        joinAs(0, { signal: stop.signal }),
        /^RendezvousError: interrupted while waiting for the other nodes at the rendezvous/,
      );
      assert.ok(Date.now() - started < 2000);
    });
  });
});
