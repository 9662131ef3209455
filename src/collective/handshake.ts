// The ring handshake, a challenge-response in which the shared token never crosses the wire:
//   dialler  -> HELLO      magic, protocol version, rank, world size, bucket and chunk sizes, fresh nonce
//   acceptor -> CHALLENGE  its own fresh nonce
//   dialler  -> PROOF      HMAC-SHA256(token, "dialler" | hello | acceptor's nonce)
//   acceptor -> ACK        its rank and world size, HMAC-SHA256(token, "acceptor" | hello | its nonce)
// The acceptor checks the proof before any other field, then answers with a MAC of its own, so each
// side knows the other holds the token; fresh nonces on both sides make a recorded exchange useless
// to replay, and the role labels keep one side's MAC from serving as the other's. Sizes are part of
// the hello because ranks that split buffers differently would exchange well-formed frames of the
// wrong ranges.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ProtocolError } from './errors.ts';

export const PROTOCOL_MAGIC = 0x5244564d; // "MVDR" little-endian
/** 2: challenge-response; version 1 sent the token itself in the hello. */
export const PROTOCOL_VERSION = 2;
/** Handshake frames are tiny; anything bigger from an unauthenticated connection is refused. */
export const HANDSHAKE_MAX_BYTES = 1024;
export const NONCE_BYTES = 32;
const MAC_BYTES = 32;
const PREFIX_BYTES = 8;
const HELLO_BYTES = 24 + NONCE_BYTES;
const CHALLENGE_BYTES = PREFIX_BYTES + NONCE_BYTES;
const PROOF_BYTES = PREFIX_BYTES + MAC_BYTES;
const ACK_BYTES = 16 + MAC_BYTES;

export interface Hello {
  version: number;
  rank: number;
  worldSize: number;
  bucketBytes: number;
  chunkBytes: number;
  nonce: Buffer;
}

function prefixed(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUInt32LE(PROTOCOL_MAGIC, 0);
  b.writeUInt16LE(PROTOCOL_VERSION, 4);
  return b;
}

/** A copy of the bytes from `offset` on, once `b` is checked to be exactly `bytes` long. */
function fixedBytes(what: string, b: Buffer, bytes: number, offset: number): Buffer {
  if (b.length !== bytes) throw new ProtocolError(`${what} is ${b.length} bytes, expected ${bytes}`);
  return Buffer.from(b.subarray(offset));
}

export function encodeHello(h: Hello): Buffer {
  if (h.nonce.length !== NONCE_BYTES) throw new ProtocolError(`hello nonce is ${h.nonce.length} bytes, expected ${NONCE_BYTES}`);
  const b = prefixed(HELLO_BYTES);
  b.writeUInt16LE(h.version, 4);
  b.writeUInt32LE(h.rank, 8);
  b.writeUInt32LE(h.worldSize, 12);
  b.writeUInt32LE(h.bucketBytes, 16);
  b.writeUInt32LE(h.chunkBytes, 20);
  h.nonce.copy(b, 24);
  return b;
}

/** Magic and version come first so a peer of another version is named as such, not as garbage. */
function checkMagicAndVersion(b: Buffer, what: string): void {
  if (b.length < PREFIX_BYTES || b.readUInt32LE(0) !== PROTOCOL_MAGIC) {
    throw new ProtocolError(`${what} does not start with the medvae ring magic (not a medvae ring peer)`);
  }
  const version = b.readUInt16LE(4);
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`${what} speaks protocol version ${version}, this rank speaks ${PROTOCOL_VERSION}`);
  }
}

export function decodeHello(b: Buffer): Hello {
  checkMagicAndVersion(b, 'hello');
  const nonce = fixedBytes('hello', b, HELLO_BYTES, 24);
  return {
    version: PROTOCOL_VERSION,
    rank: b.readUInt32LE(8),
    worldSize: b.readUInt32LE(12),
    bucketBytes: b.readUInt32LE(16),
    chunkBytes: b.readUInt32LE(20),
    nonce,
  };
}

export function encodeChallenge(nonce: Buffer): Buffer {
  const b = prefixed(CHALLENGE_BYTES);
  nonce.copy(b, PREFIX_BYTES);
  return b;
}

export function decodeChallenge(b: Buffer): Buffer {
  checkMagicAndVersion(b, 'challenge');
  return fixedBytes('challenge', b, CHALLENGE_BYTES, PREFIX_BYTES);
}

export function encodeProof(mac: Buffer): Buffer {
  const b = prefixed(PROOF_BYTES);
  mac.copy(b, PREFIX_BYTES);
  return b;
}

export function decodeProof(b: Buffer): Buffer {
  checkMagicAndVersion(b, 'proof');
  return fixedBytes('proof', b, PROOF_BYTES, PREFIX_BYTES);
}

export interface Ack {
  rank: number;
  worldSize: number;
  mac: Buffer;
}

export function encodeAck(a: Ack): Buffer {
  const b = prefixed(ACK_BYTES);
  b.writeUInt32LE(a.rank, 8);
  b.writeUInt32LE(a.worldSize, 12);
  a.mac.copy(b, 16);
  return b;
}

export function decodeAck(b: Buffer): Ack {
  checkMagicAndVersion(b, 'ack');
  const mac = fixedBytes('ack', b, ACK_BYTES, 16);
  return { rank: b.readUInt32LE(8), worldSize: b.readUInt32LE(12), mac };
}

/** What one side proves: HMAC-SHA256 under the token of its role, the dialler's hello (with its nonce) and the acceptor's nonce. */
export function handshakeMac(token: string, role: 'dialler' | 'acceptor', hello: Buffer, acceptorNonce: Buffer): Buffer {
  return tokenMac(token, `medvae-ring v${PROTOCOL_VERSION} ${role}`, hello, acceptorNonce);
}

/**
 * HMAC-SHA256 under the shared token of a label and some bytes: the proof both the ring handshake and
 * the agents' rendezvous exchange. The label names protocol, version and role, so a MAC made for one
 * never passes as another.
 */
export function tokenMac(token: string, label: string, ...parts: Buffer[]): Buffer {
  const hmac = createHmac('sha256', Buffer.from(token, 'utf8')).update(`${label}\0`);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/** Constant-time comparison of two MACs. */
export function macsMatch(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What the accepting rank expects of its left neighbour's hello. */
export interface HelloExpectation {
  rank: number;
  worldSize: number;
  bucketBytes: number;
  chunkBytes: number;
}

/** Why an authenticated hello is refused, or null when it is the expected peer. */
export function helloRefusal(h: Hello, expected: HelloExpectation): string | null {
  if (h.worldSize !== expected.worldSize) return `world size ${h.worldSize}, expected ${expected.worldSize}`;
  if (h.rank !== expected.rank) return `rank ${h.rank} connected, expected rank ${expected.rank} (the left neighbour)`;
  if (h.bucketBytes !== expected.bucketBytes) return `bucketBytes ${h.bucketBytes}, this rank uses ${expected.bucketBytes}`;
  if (h.chunkBytes !== expected.chunkBytes) return `chunkBytes ${h.chunkBytes}, this rank uses ${expected.chunkBytes}`;
  return null;
}

/** True for hosts that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || host.startsWith('::ffff:127.');
  return false;
}
