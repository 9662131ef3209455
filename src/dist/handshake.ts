// The ring handshake: the connecting rank sends HELLO (magic, protocol version, its rank, world size,
// the ring's bucket and chunk sizes, the shared token); the accepting rank checks every field and
// answers ACK, or logs why and closes. Sizes are part of it because ranks that split buffers
// differently would exchange well-formed frames of the wrong ranges.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ProtocolError } from './errors.ts';

export const PROTOCOL_MAGIC = 0x5244564d; // "MVDR" little-endian
export const PROTOCOL_VERSION = 1;
/** Handshake frames are tiny; anything bigger from an unauthenticated connection is refused. */
export const HANDSHAKE_MAX_BYTES = 1024;
const MAX_TOKEN_BYTES = 512;
const HELLO_FIXED_BYTES = 24;
const ACK_BYTES = 16;

export interface Hello {
  version: number;
  rank: number;
  worldSize: number;
  bucketBytes: number;
  chunkBytes: number;
  token: string;
}

export function encodeHello(h: Hello): Buffer {
  const token = Buffer.from(h.token, 'utf8');
  if (token.length > MAX_TOKEN_BYTES) throw new ProtocolError(`token is ${token.length} bytes, at most ${MAX_TOKEN_BYTES} allowed`);
  const b = Buffer.alloc(HELLO_FIXED_BYTES + token.length);
  b.writeUInt32LE(PROTOCOL_MAGIC, 0);
  b.writeUInt16LE(h.version, 4);
  b.writeUInt16LE(token.length, 6);
  b.writeUInt32LE(h.rank, 8);
  b.writeUInt32LE(h.worldSize, 12);
  b.writeUInt32LE(h.bucketBytes, 16);
  b.writeUInt32LE(h.chunkBytes, 20);
  token.copy(b, HELLO_FIXED_BYTES);
  return b;
}

/** Magic and version come first so a peer of another version is named as such, not as garbage. */
function checkMagicAndVersion(b: Buffer, what: string): void {
  if (b.length < 8 || b.readUInt32LE(0) !== PROTOCOL_MAGIC) {
    throw new ProtocolError(`${what} does not start with the medvae ring magic (not a medvae ring peer)`);
  }
  const version = b.readUInt16LE(4);
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(`${what} speaks protocol version ${version}, this rank speaks ${PROTOCOL_VERSION}`);
  }
}

export function decodeHello(b: Buffer): Hello {
  checkMagicAndVersion(b, 'hello');
  const tokenBytes = b.readUInt16LE(6);
  if (b.length !== HELLO_FIXED_BYTES + tokenBytes) {
    throw new ProtocolError(`hello is ${b.length} bytes, expected ${HELLO_FIXED_BYTES + tokenBytes} for a ${tokenBytes}-byte token`);
  }
  return {
    version: PROTOCOL_VERSION,
    rank: b.readUInt32LE(8),
    worldSize: b.readUInt32LE(12),
    bucketBytes: b.readUInt32LE(16),
    chunkBytes: b.readUInt32LE(20),
    token: b.subarray(HELLO_FIXED_BYTES).toString('utf8'),
  };
}

export interface Ack {
  rank: number;
  worldSize: number;
}

export function encodeAck(a: Ack): Buffer {
  const b = Buffer.alloc(ACK_BYTES);
  b.writeUInt32LE(PROTOCOL_MAGIC, 0);
  b.writeUInt16LE(PROTOCOL_VERSION, 4);
  b.writeUInt32LE(a.rank, 8);
  b.writeUInt32LE(a.worldSize, 12);
  return b;
}

export function decodeAck(b: Buffer): Ack {
  checkMagicAndVersion(b, 'ack');
  if (b.length !== ACK_BYTES) throw new ProtocolError(`ack is ${b.length} bytes, expected ${ACK_BYTES}`);
  return { rank: b.readUInt32LE(8), worldSize: b.readUInt32LE(12) };
}

/** Constant-time comparison; hashing first makes the lengths equal, as timingSafeEqual requires. */
export function tokensMatch(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** What the accepting rank expects of its left neighbour's hello. */
export interface HelloExpectation {
  rank: number;
  worldSize: number;
  bucketBytes: number;
  chunkBytes: number;
  token: string;
}

/** Why a hello is refused, or null when it is the expected peer. The token is checked first, so a stranger learns nothing. */
export function helloRefusal(h: Hello, expected: HelloExpectation): string | null {
  if (!tokensMatch(h.token, expected.token)) return `bad token (claimed rank ${h.rank})`;
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
