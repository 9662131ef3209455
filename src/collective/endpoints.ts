// Where a rank listens and how a neighbour reaches it: socket file names, and the targets a dial
// tries in order (a Unix socket on this host, then TCP).
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLoopbackHost } from './handshake.ts';
import type { PeerAddress, RingTransport } from './ring-options.ts';

/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
export const MAX_SOCKET_PATH_BYTES = 103;

/**
 * The socket file of the rank listening on host:port. A listening TCP port belongs to one process at a
 * time, so while a rank holds it the name is this run's alone; the user id keeps users apart in a shared
 * /tmp. A stale file left by a killed rank is replaced by the next listener on that address.
 */
export function unixSocketPath(host: string, port: number): string {
  const uid = process.getuid?.() ?? 0;
  return join(tmpdir(), `medvae-ring-${uid}-${host.replace(/[^A-Za-z0-9.]/g, '_')}-${port}.sock`);
}

/**
 * A socket file name for a rank listening beyond loopback: the address alone does not identify it, since
 * hosts in separate network namespaces (or containers) can share one /tmp and reuse a port number.
 */
export function uniqueSocketPath(port: number): string {
  const uid = process.getuid?.() ?? 0;
  return join(tmpdir(), `medvae-ring-${uid}-${process.pid}-${port}-${randomBytes(4).toString('hex')}.sock`);
}

export function fitsSocketPath(path: string): boolean {
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES;
}

/** True when `path` is a socket created by this user: the only kind a rank dials or replaces. */
export function isOwnSocket(path: string): boolean {
  try {
    const stat = lstatSync(path);
    return stat.isSocket() && stat.uid === (process.getuid?.() ?? stat.uid);
  } catch {
    return false;
  }
}

/** Where a dial goes: a TCP address or a Unix socket file. */
export type DialTarget = { host: string; port: number; path?: undefined } | { path: string };

export function describeTarget(t: DialTarget): string {
  return t.path === undefined ? `${t.host}:${t.port}` : `unix socket ${t.path}`;
}

/** What to try, in order, on one dial attempt to `peer`. */
export function dialTargets(transport: RingTransport, peer: PeerAddress): DialTarget[] {
  const tcp = { host: peer.host, port: peer.port };
  if (transport === 'tcp') return [tcp];
  // Handed out by the agent for a rank on this host: its own name, whatever address it listens on.
  if (peer.socketPath !== undefined && transport === 'auto') return isOwnSocket(peer.socketPath) ? [{ path: peer.socketPath }, tcp] : [tcp];
  const path = peer.socketPath ?? unixSocketPath(peer.host, peer.port);
  if (transport === 'unix') return [{ path }];
  // auto: the socket file appears only once the peer listens, and a peer on 'tcp' offers none; a stale
  // file of a killed rank refuses the connection, and TCP is tried next.
  return isLoopbackHost(peer.host) && fitsSocketPath(path) && isOwnSocket(path) ? [{ path }, tcp] : [tcp];
}

/** Errors that mean nobody listens there (yet): try the next target, or again later. */
export function isNotListening(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}
