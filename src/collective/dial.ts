// The dialling side of a ring link: connect to the right neighbour (its Unix socket when it is on
// this host, else TCP, through TLS when asked), prove the token, and check who answered.
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { PeerError, ProtocolError } from './errors.ts';
import { FrameReader, FrameType, type FrameHandler } from './frame.ts';
import {
  decodeAck,
  decodeChallenge,
  encodeHello,
  encodeProof,
  HANDSHAKE_MAX_BYTES,
  handshakeMac,
  macsMatch,
  NONCE_BYTES,
  PROTOCOL_VERSION,
} from './handshake.ts';
import type { LinkEnd, RingSettings } from './ring-collective.ts';
import { type PeerAddress, type RingTransport, TOKEN_ENV } from './ring-options.ts';
import { type DialTarget, describeTarget, dialTargets, isNotListening } from './endpoints.ts';
import { collect, holdingHandler, sendFrame } from './link-frames.ts';
import { tlsClientOptions } from './tls-link.ts';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One attempt to connect to the right neighbour and pass its handshake; `secure`: TCP goes through TLS. */
function dialOnce(s: RingSettings, target: DialTarget, deadline: number, secure: boolean): Promise<LinkEnd> {
  const rightRank = (s.rank + 1) % s.worldSize;
  const where = describeTarget(target);
  return new Promise((resolve, reject) => {
    const hello = encodeHello({
      version: PROTOCOL_VERSION,
      rank: s.rank,
      worldSize: s.worldSize,
      bucketBytes: s.bucketBytes,
      chunkBytes: s.chunkBytes,
      nonce: randomBytes(NONCE_BYTES),
    });
    let challenge: Buffer | null = null;
    const handler: FrameHandler = {
      maxPayloadBytes: HANDSHAKE_MAX_BYTES,
      onError: (e) => settle(new PeerError(rightRank, `rank ${rightRank} answered the handshake badly: ${e.message}`)),
      onHeader: (h) => {
        const nonce = challenge;
        if (nonce === null) {
          if (h.type !== FrameType.Challenge) throw new ProtocolError(`expected a challenge frame, got frame type ${h.type}`);
          return collect((payload) => {
            challenge = decodeChallenge(payload);
            sendFrame(socket, FrameType.Proof, encodeProof(handshakeMac(s.token, 'dialler', hello, challenge)));
          });
        }
        if (h.type !== FrameType.Ack) throw new ProtocolError(`expected an ack frame, got frame type ${h.type}`);
        return collect((payload) => {
          const ack = decodeAck(payload);
          if (!macsMatch(ack.mac, handshakeMac(s.token, 'acceptor', hello, nonce))) {
            throw new ProtocolError(
              `its answer does not prove it holds this rank's ${TOKEN_ENV} (the tokens differ, or it is not a rank of this run)`,
            );
          }
          if (ack.rank !== rightRank || ack.worldSize !== s.worldSize) {
            throw new ProtocolError(`rank ${ack.rank} of ${ack.worldSize} answered, expected rank ${rightRank} of ${s.worldSize}`);
          }
          settle(null);
        });
      },
    };
    const encrypted = secure && target.path === undefined;
    let socket: Socket;
    let reader: FrameReader;
    if (encrypted) {
      // TLS hands over decrypted bytes as events: no read buffer of ours to read into.
      socket = tls.connect({ host: target.host, port: target.port, ...tlsClientOptions(s.token) }).setNoDelay(true);
      reader = FrameReader.onDataEvents(socket, handler);
    } else {
      const dialled = FrameReader.withReadBuffer(handler);
      socket =
        target.path === undefined
          ? net.connect({ host: target.host, port: target.port, noDelay: true, onread: dialled.onread })
          : net.connect({ path: target.path, onread: dialled.onread });
      reader = dialled.reader;
      reader.bind(socket);
    }
    let settled = false;
    const settle = (error: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        reader.stop();
        socket.destroy();
        reject(error);
      } else {
        reader.setHandler(holdingHandler(s.maxFrameBytes, () => undefined));
        resolve({ socket, reader });
      }
    };
    const timer = setTimeout(
      () => settle(new PeerError(rightRank, `rank ${rightRank} at ${where} did not complete the handshake in time`)),
      Math.max(0, deadline - Date.now()),
    );
    const refused = (): PeerError =>
      new PeerError(
        rightRank,
        `rank ${rightRank} at ${where} closed the connection during the handshake (it refused this rank's token, version or sizes, or stopped listening as its own ring failed to form: see its log)`,
      );
    let connected = false;
    // A peer that refuses the hello closes the connection; where our hello was still unread, the
    // close comes as a reset, which says the same.
    socket.on('error', (e: NodeJS.ErrnoException) => settle(connected && (e.code === 'ECONNRESET' || e.code === 'EPIPE') ? refused() : e));
    socket.on('close', () => settle(refused()));
    socket.on(encrypted ? 'secureConnect' : 'connect', () => {
      connected = true;
      sendFrame(socket, FrameType.Hello, hello);
    });
  });
}

/** Dials the right neighbour, retrying while it is not listening yet, until timeoutMs. */
export async function dialRight(s: RingSettings, transport: RingTransport, peer: PeerAddress, secure: boolean): Promise<LinkEnd> {
  const deadline = Date.now() + s.timeoutMs;
  const rightRank = (s.rank + 1) % s.worldSize;
  for (let attempt = 0; ; attempt++) {
    const targets = dialTargets(transport, peer);
    for (const [i, target] of targets.entries()) {
      try {
        return await dialOnce(s, target, deadline, secure);
      } catch (error) {
        if (isNotListening(error) && (i < targets.length - 1 || Date.now() < deadline)) continue;
        if (error instanceof PeerError) throw error;
        throw new PeerError(
          rightRank,
          `rank ${s.rank} could not connect to rank ${rightRank} at ${describeTarget(target)}: ${(error as Error).message}`,
        );
      }
    }
    await sleep(Math.min(20 * 2 ** attempt, 500));
  }
}
