// Speaking the ring handshake by hand (a stranger, a peer with another token, a fake rank), for the
// tests that check what a rank refuses and what crosses the wire.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import { encodeHeader, FrameType, HEADER_BYTES } from '../../src/collective/frame.ts';
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeAck,
  encodeChallenge,
  encodeHello,
  encodeProof,
  handshakeMac,
  NONCE_BYTES,
  PROTOCOL_VERSION,
} from '../../src/collective/handshake.ts';
import { PeerError } from '../../src/collective/errors.ts';
import type { RingListener, RingOptions } from '../../src/collective/ring.ts';

export const SMALL = { bucketBytes: 4096, chunkBytes: 1024 } as const;

export function frame(type: number, payload: Buffer): Buffer {
  return Buffer.concat([encodeHeader({ payloadBytes: payload.length, type, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }), payload]);
}

/** A hello with a fresh nonce; encodeHello writes whatever version it is given, so a peer's refusal can be tested. */
export function helloPayload(fields: { rank: number; worldSize: number; version?: number }): Buffer {
  return encodeHello({ version: PROTOCOL_VERSION, ...SMALL, ...fields, nonce: randomBytes(NONCE_BYTES) });
}

/** Calls `onFrame` for each whole frame the socket delivers (handshake frames are small). */
export function onFrames(socket: Socket, onFrame: (type: number, payload: Buffer) => void): void {
  let pending = Buffer.alloc(0);
  socket.on('data', (data: Buffer) => {
    pending = Buffer.concat([pending, data]);
    while (pending.length >= HEADER_BYTES) {
      const bytes = pending.readUInt32LE(0);
      if (pending.length < HEADER_BYTES + bytes) return;
      const type = pending.readUInt8(4);
      const payload = pending.subarray(HEADER_BYTES, HEADER_BYTES + bytes);
      pending = pending.subarray(HEADER_BYTES + bytes);
      onFrame(type, payload);
    }
  });
}

/** As a dialler: hello, then the proof for whatever challenge comes, computed with `token`. */
export function dialHandshake(socket: Socket, fields: { rank: number; worldSize: number }, token: string): void {
  const hello = helloPayload(fields);
  onFrames(socket, (type, payload) => {
    if (type === FrameType.Challenge)
      socket.write(frame(FrameType.Proof, encodeProof(handshakeMac(token, 'dialler', hello, decodeChallenge(payload)))));
  });
  socket.write(frame(FrameType.Hello, hello));
}

/** As an acceptor (a fake rank): challenge the hello, then ack with `token`'s MAC whatever the proof; `then` after the ack. */
export function acceptHandshake(socket: Socket, self: { rank: number; worldSize: number }, token: string, then: () => void): void {
  const nonce = randomBytes(NONCE_BYTES);
  let hello: Buffer | null = null;
  onFrames(socket, (type, payload) => {
    if (type === FrameType.Hello) {
      decodeHello(payload);
      hello = Buffer.from(payload);
      socket.write(frame(FrameType.Challenge, encodeChallenge(nonce)));
    } else if (type === FrameType.Proof && hello) {
      decodeProof(payload);
      socket.write(frame(FrameType.Ack, encodeAck({ ...self, mac: handshakeMac(token, 'acceptor', hello, nonce) })));
      then();
    }
  });
}

/** Dials `where`, tries the handshake with `token`, and resolves once the rank has closed the connection. */
export function handshakeClient(where: net.NetConnectOpts, fields: { rank: number; worldSize: number }, token: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(where, () => dialHandshake(socket, fields, token));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

/**
 * Two ranks holding different tokens, listening with `listen`: both fail to form, each naming the
 * other, and each rank logs one refusal. At least one is the bad token; a rank whose own dial failed
 * first may stop listening before the other's proof arrives, and says so.
 */
export async function expectMismatchedTokensRefused(listen: (opts: RingOptions) => Promise<RingListener>): Promise<void> {
  const logs: string[] = [];
  const listeners = await Promise.all(
    ['alpha', 'beta'].map((token, rank) => listen({ rank, worldSize: 2, token, timeoutMs: 5000, log: (line) => logs.push(line) })),
  );
  const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
  const started = Date.now();
  const outcomes = await Promise.allSettled(listeners.map((l) => l.connect(peers)));
  for (const [rank, outcome] of outcomes.entries()) {
    assert.equal(outcome.status, 'rejected');
    const error = (outcome as PromiseRejectedResult).reason as PeerError;
    assert.ok(error instanceof PeerError && error.rank === 1 - rank, String(error));
    assert.match(error.message, /closed the connection during the handshake/);
  }
  assert.ok(Date.now() - started < 4000, 'fails without waiting for the timeout');
  const refusals = [0, 1].map((rank) => logs.filter((l) => l.startsWith(`rank ${rank} refused`)));
  for (const lines of refusals) {
    assert.equal(lines.length, 1, logs.join('\n'));
    assert.match(lines[0]!, /: (bad token|this rank stopped listening before the handshake completed)/);
  }
  assert.ok(
    refusals.some(([line]) => /bad token/.test(line!)),
    logs.join('\n'),
  );
}
