// The ring's settings: what every rank is told (rank, world size, sizes, timeouts, token), checked
// once, with the environment variables that supply defaults.
import { DistConfigError } from './errors.ts';
import type { RingSettings } from './ring-collective.ts';

export interface PeerAddress {
  host: string;
  port: number;
  /**
   * The rank's Unix socket, given only to ranks on its own host (the agent knows where each rank runs):
   * across hosts a path would name a file on the wrong machine.
   */
  socketPath?: string;
}

/**
 * How this rank reaches its right neighbour. 'auto': a Unix socket when the neighbour's host is loopback
 * and its socket file exists, else TCP. 'unix': Unix sockets only (loopback hosts). 'tcp': TCP only, and
 * no socket file is offered to the left neighbour either.
 */
export type RingTransport = 'tcp' | 'unix' | 'auto';
const TRANSPORTS: readonly RingTransport[] = ['tcp', 'unix', 'auto'];

export interface RingOptions {
  rank: number;
  worldSize: number;
  /** Default env MEDVAE_DIST_TRANSPORT, else 'auto'. */
  transport?: RingTransport;
  /** Where this rank listens; default 127.0.0.1 and an ephemeral port. */
  listen?: PeerAddress;
  /**
   * Beyond loopback, also listen on a Unix socket of a name unique to this process, for ranks on this
   * host (loopback listeners always offer one, under a name derived from the address).
   */
  offerUnixSocket?: boolean;
  /** Shared secret; default env MEDVAE_DIST_TOKEN. Required to listen beyond loopback. */
  token?: string;
  /** Encrypt TCP links with TLS keyed by the token; default env MEDVAE_DIST_TLS=1. */
  tls?: boolean;
  /** Gradient bytes per bucket (the unit split across ranks); default 4 MiB. */
  bucketBytes?: number;
  /** Bytes per frame, the pipelining unit; default 512 KiB. */
  chunkBytes?: number;
  /** Longest wait for a connection, or for progress within an operation; default 30 s. */
  timeoutMs?: number;
  /** Largest frame accepted from the left neighbour; default 16 MiB. */
  maxFrameBytes?: number;
  log?: (line: string) => void;
}

export interface ConnectRingOptions extends RingOptions {
  peers: PeerAddress[];
}

/** Where ring events (a peer gone, a transport fallback) go when no log is given. */
export function logRingEvent(line: string): void {
  console.warn(`[medvae dist] ${line}`);
}

export const DEFAULT_BUCKET_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const TOKEN_ENV = 'MEDVAE_DIST_TOKEN';
export const TRANSPORT_ENV = 'MEDVAE_DIST_TRANSPORT';

export function resolveTransport(opts: RingOptions): RingTransport {
  const transport = opts.transport ?? process.env[TRANSPORT_ENV] ?? 'auto';
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    const source = opts.transport === undefined ? TRANSPORT_ENV : 'transport';
    throw new DistConfigError(`${source} must be one of ${TRANSPORTS.join(', ')}, got '${transport}'`);
  }
  return transport as RingTransport;
}

function positiveMultipleOf4(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0 || value % 4 !== 0 || value > 0xffffffff) {
    throw new DistConfigError(`${name} must be a positive multiple of 4 below 4 GiB, got ${value}`);
  }
  return value;
}

export function resolveSettings(opts: RingOptions): RingSettings {
  const { rank, worldSize } = opts;
  if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 255) {
    throw new DistConfigError(`worldSize must be an integer in 1..255, got ${worldSize}`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new DistConfigError(`rank must be an integer in 0..${worldSize - 1}, got ${rank}`);
  }
  const bucketBytes = positiveMultipleOf4('bucketBytes', opts.bucketBytes ?? DEFAULT_BUCKET_BYTES);
  const maxFrameBytes = positiveMultipleOf4('maxFrameBytes', opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
  const chunkBytes = positiveMultipleOf4('chunkBytes', opts.chunkBytes ?? Math.min(DEFAULT_CHUNK_BYTES, bucketBytes));
  if (chunkBytes > maxFrameBytes) {
    throw new DistConfigError(`chunkBytes ${chunkBytes} exceeds maxFrameBytes ${maxFrameBytes}: frames would be refused`);
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new DistConfigError(`timeoutMs must be positive, got ${timeoutMs}`);
  return {
    rank,
    worldSize,
    token: opts.token ?? process.env[TOKEN_ENV] ?? '',
    bucketBytes,
    chunkBytes,
    timeoutMs,
    maxFrameBytes,
    log: opts.log ?? logRingEvent,
  };
}
