// Framing, the handshake codec and the ring's cutting plan, without sockets.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
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
