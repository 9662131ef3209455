// Forming the ring. Each rank listens; rank r dials rank r+1 and accepts rank r-1. With port 0 the
// agent gathers every rank's ephemeral port from listenForRing first, then hands each rank the
// full peer list for connect(). Connections that fail the handshake are logged and closed; the
// listener keeps accepting until the real left neighbour has connected.
// Transport: ranks on one host talk over a Unix domain socket (fewer kernel cycles per byte than loopback TCP),
// other hosts over TCP. The peer list names ranks by host and TCP port only, so a rank listening on
// loopback also listens on a socket file whose name is derived from that address (see unixSocketPath):
// a dialler finds it without any extra rendezvous. Framing and handshake are the same on both.
import { chmodSync, lstatSync, rmSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Collective, LocalCollective } from './collective.ts';
import { DistConfigError, PeerError, ProtocolError } from './errors.ts';
import { encodeHeader, FrameReader, FrameType, type FrameHandler, type PayloadSink } from './frame.ts';
import { randomBytes } from 'node:crypto';
import {
  decodeAck,
  decodeChallenge,
  decodeHello,
  decodeProof,
  encodeAck,
  encodeChallenge,
  encodeHello,
  encodeProof,
  HANDSHAKE_MAX_BYTES,
  handshakeMac,
  helloRefusal,
  isLoopbackHost,
  macsMatch,
  NONCE_BYTES,
  PROTOCOL_VERSION,
} from './handshake.ts';
import { type LinkEnd, RingCollective, type RingSettings } from './ring-collective.ts';
import { resolveTls, tlsClientOptions, tlsServerOptions } from './tls-link.ts';

export type { Collective, CollectiveStats } from './collective.ts';
export { LocalCollective } from './collective.ts';

export interface PeerAddress {
  host: string;
  port: number;
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

export interface RingListener {
  /** The port this rank listens on (0 for a world of one, which needs no socket). */
  readonly port: number;
  /** The Unix socket this rank also listens on until the ring forms, or null (TCP only). */
  readonly socketPath: string | null;
  connect(peers: PeerAddress[]): Promise<Collective>;
  /** Stops listening without forming the ring (an agent aborting start-up). */
  close(): Promise<void>;
}

export const DEFAULT_BUCKET_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const TOKEN_ENV = 'MEDVAE_DIST_TOKEN';
export const TRANSPORT_ENV = 'MEDVAE_DIST_TRANSPORT';
/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 103;

/**
 * The socket file of the rank listening on host:port. A listening TCP port belongs to one process at a
 * time, so while a rank holds it the name is this run's alone; the user id keeps users apart in a shared
 * /tmp. A stale file left by a killed rank is replaced by the next listener on that address.
 */
export function unixSocketPath(host: string, port: number): string {
  const uid = process.getuid?.() ?? 0;
  return join(tmpdir(), `medvae-ring-${uid}-${host.replace(/[^A-Za-z0-9.]/g, '_')}-${port}.sock`);
}

function fitsSocketPath(path: string): boolean {
  return Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES;
}

/** True when `path` is a socket created by this user: the only kind a rank dials or replaces. */
function isOwnSocket(path: string): boolean {
  try {
    const stat = lstatSync(path);
    return stat.isSocket() && stat.uid === (process.getuid?.() ?? stat.uid);
  } catch {
    return false;
  }
}

function resolveTransport(opts: RingOptions): RingTransport {
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

function resolveSettings(opts: RingOptions): RingSettings {
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
    log: opts.log ?? ((line) => console.warn(`[medvae dist] ${line}`)),
  };
}

/** Collects a small payload whole, then hands it over. */
function collect(onPayload: (payload: Buffer) => void): PayloadSink {
  const pieces: Buffer[] = [];
  // Copies: a dialled socket's pieces live in a read buffer that the next read overwrites.
  return { write: (p) => pieces.push(Buffer.from(p)), end: () => onPayload(Buffer.concat(pieces)) };
}

/** Holds frames back until the collective takes the link over. */
function holdingHandler(maxPayloadBytes: number, onError: (e: Error) => void): FrameHandler {
  return { maxPayloadBytes, onHeader: () => 'wait', onError };
}

function sendFrame(socket: Socket, type: number, payload: Buffer): void {
  socket.write(encodeHeader({ payloadBytes: payload.length, type, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
  socket.write(payload);
}

function listenOn(server: Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Accepts connections, over TCP and optionally a Unix socket, until the left neighbour has passed the handshake. */
class Acceptor {
  private readonly tcpServer: Server;
  private unixServer: Server | null = null;
  /** The socket file this acceptor created, removed by close(). */
  socketPath: string | null = null;
  private readonly pending = new Set<Socket>();
  private leftEnd: LinkEnd | null = null;
  private onLeft: ((end: LinkEnd) => void) | null = null;
  private stopWaiting: ((error: Error) => void) | null = null;

  constructor(private readonly s: RingSettings, secure: boolean) {
    this.tcpServer = this.newServer(secure);
  }

  private newServer(secure: boolean): Server {
    if (!secure) return net.createServer({ noDelay: true }, (socket) => this.handshake(socket));
    const server = tls.createServer({ ...tlsServerOptions(this.s.token, this.s.timeoutMs), noDelay: true }, (socket) => this.handshake(socket));
    // A peer without the token fails here, before any frame: log it like any other refusal.
    server.on('tlsClientError', (e, socket) => this.s.log(`rank ${this.s.rank} refused a connection from ${socket.remoteAddress}:${socket.remotePort}: TLS handshake failed (${e.message}); does it hold this rank's ${TOKEN_ENV}?`));
    return server;
  }

  async listen(host: string, port: number): Promise<number> {
    await listenOn(this.tcpServer, { host, port });
    const address = this.tcpServer.address();
    if (address === null || typeof address === 'string') throw new DistConfigError(`listening on ${host}:${port} gave no TCP port`);
    return address.port;
  }

  /** Also listens on `path`, readable and writable by this user only; a stale socket of this user's there is replaced. */
  async listenUnix(path: string): Promise<void> {
    if (!fitsSocketPath(path)) throw new DistConfigError(`socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: set TMPDIR to a shorter directory`);
    // This rank holds the TCP address the name is derived from, so a socket of ours there is a killed rank's leftover.
    if (isOwnSocket(path)) rmSync(path, { force: true });
    const server = this.newServer(false);
    // Created with the umask's mode (sockets need write permission to connect), then narrowed at once;
    // a stranger connecting in between would still have to pass the token check.
    await listenOn(server, { path, exclusive: true });
    this.unixServer = server;
    this.socketPath = path;
    chmodSync(path, 0o600);
  }

  /** The authenticated left neighbour, once it connects (or rejects after timeoutMs). */
  left(): Promise<LinkEnd> {
    const leftRank = (this.s.rank - 1 + this.s.worldSize) % this.s.worldSize;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PeerError(leftRank, `rank ${leftRank} did not connect to rank ${this.s.rank} within ${this.s.timeoutMs} ms`)),
        this.s.timeoutMs,
      );
      const deliver = (end: LinkEnd) => {
        clearTimeout(timer);
        resolve(end);
      };
      this.stopWaiting = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      if (this.leftEnd) deliver(this.leftEnd);
      else this.onLeft = deliver;
    });
  }

  /** Stops accepting and drops unauthenticated connections; the left link, if formed, lives on. */
  close(): void {
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
    // The socket file goes first, while this rank still holds the TCP port its name is derived from:
    // once the port is free another run may claim the same name. server.close() only calls back once
    // every accepted socket has closed, the ring's left link included, so nothing waits on it.
    if (this.socketPath !== null) rmSync(this.socketPath, { force: true });
    if (this.unixServer?.listening) this.unixServer.close();
    if (this.tcpServer.listening) this.tcpServer.close();
    if (this.leftEnd === null) this.stopWaiting?.(new DistConfigError(`rank ${this.s.rank}: listener closed before the left neighbour connected`));
  }

  private handshake(socket: Socket): void {
    const s = this.s;
    const remote = socket.remoteAddress === undefined ? 'the unix socket' : `${socket.remoteAddress}:${socket.remotePort}`;
    const leftRank = (s.rank - 1 + s.worldSize) % s.worldSize;
    let settled = false;
    this.pending.add(socket);
    const refuse = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reader.stop();
      this.pending.delete(socket);
      s.log(`rank ${s.rank} refused a connection from ${remote}: ${reason}`);
      socket.destroy();
    };
    const timer = setTimeout(() => refuse(`no valid hello within ${s.timeoutMs} ms`), s.timeoutMs);
    socket.on('error', (e) => refuse(`socket error during the handshake: ${e.message}`));
    socket.on('close', () => refuse('closed before completing the handshake'));
    // A hello, answered with a challenge; then the proof, checked before any field of the hello.
    let hello: { bytes: Buffer; rank: number } | null = null;
    const nonce = randomBytes(NONCE_BYTES);
    const onHello = (payload: Buffer): void => {
      const decoded = decodeHello(payload);
      hello = { bytes: payload, rank: decoded.rank };
      sendFrame(socket, FrameType.Challenge, encodeChallenge(nonce));
    };
    const onProof = (payload: Buffer, sent: { bytes: Buffer; rank: number }): void => {
      if (!macsMatch(decodeProof(payload), handshakeMac(s.token, 'dialler', sent.bytes, nonce))) {
        return refuse(`bad token (claimed rank ${sent.rank}): its proof does not match this rank's ${TOKEN_ENV}`);
      }
      const refusal = helloRefusal(decodeHello(sent.bytes), { ...s, rank: leftRank });
      if (refusal !== null) return refuse(refusal);
      if (this.leftEnd !== null) return refuse(`rank ${leftRank} is already connected`);
      settled = true;
      clearTimeout(timer);
      this.pending.delete(socket);
      reader.setHandler(holdingHandler(0, () => undefined));
      sendFrame(socket, FrameType.Ack, encodeAck({ rank: s.rank, worldSize: s.worldSize, mac: handshakeMac(s.token, 'acceptor', sent.bytes, nonce) }));
      s.log(`rank ${s.rank} accepted rank ${leftRank} from ${remote}`);
      this.leftEnd = { socket, reader };
      this.onLeft?.(this.leftEnd);
    };
    const reader = FrameReader.onDataEvents(socket, {
      maxPayloadBytes: HANDSHAKE_MAX_BYTES,
      onError: (e) => refuse(e.message),
      onHeader: (h) => {
        const sent = hello;
        if (sent === null) {
          if (h.type !== FrameType.Hello) throw new ProtocolError(`expected a hello frame, got frame type ${h.type}`);
          return collect(onHello);
        }
        if (h.type !== FrameType.Proof) throw new ProtocolError(`expected a proof frame, got frame type ${h.type}`);
        return collect((payload) => onProof(payload, sent));
      },
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Where a dial goes: a TCP address or a Unix socket file. */
type DialTarget = { host: string; port: number; path?: undefined } | { path: string };

function describeTarget(t: DialTarget): string {
  return t.path === undefined ? `${t.host}:${t.port}` : `unix socket ${t.path}`;
}

/** What to try, in order, on one dial attempt to `peer`. */
function dialTargets(transport: RingTransport, peer: PeerAddress): DialTarget[] {
  const tcp = { host: peer.host, port: peer.port };
  if (transport === 'tcp') return [tcp];
  const path = unixSocketPath(peer.host, peer.port);
  if (transport === 'unix') return [{ path }];
  // auto: the socket file appears only once the peer listens, and a peer on 'tcp' offers none; a stale
  // file of a killed rank refuses the connection, and TCP is tried next.
  return isLoopbackHost(peer.host) && fitsSocketPath(path) && isOwnSocket(path) ? [{ path }, tcp] : [tcp];
}

/** Errors that mean nobody listens there (yet): try the next target, or again later. */
function isNotListening(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'ENOENT';
}

/** One attempt to connect to the right neighbour and pass its handshake; `secure`: TCP goes through TLS. */
function dialOnce(s: RingSettings, target: DialTarget, deadline: number, secure: boolean): Promise<LinkEnd> {
  const rightRank = (s.rank + 1) % s.worldSize;
  const where = describeTarget(target);
  return new Promise((resolve, reject) => {
    const hello = encodeHello({ version: PROTOCOL_VERSION, rank: s.rank, worldSize: s.worldSize, bucketBytes: s.bucketBytes, chunkBytes: s.chunkBytes, nonce: randomBytes(NONCE_BYTES) });
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
            throw new ProtocolError(`its answer does not prove it holds this rank's ${TOKEN_ENV} (the tokens differ, or it is not a rank of this run)`);
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
      socket = target.path === undefined
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
    socket.on('error', (e) => settle(e));
    socket.on('close', () =>
      settle(new PeerError(rightRank, `rank ${rightRank} at ${where} closed the connection during the handshake (it refused this rank's token, version or sizes: see its log)`)),
    );
    socket.on(encrypted ? 'secureConnect' : 'connect', () => sendFrame(socket, FrameType.Hello, hello));
  });
}

/** Dials the right neighbour, retrying while it is not listening yet, until timeoutMs. */
async function dialRight(s: RingSettings, transport: RingTransport, peer: PeerAddress, secure: boolean): Promise<LinkEnd> {
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
        throw new PeerError(rightRank, `rank ${s.rank} could not connect to rank ${rightRank} at ${describeTarget(target)}: ${(error as Error).message}`);
      }
    }
    await sleep(Math.min(20 * 2 ** attempt, 500));
  }
}

function checkPeers(s: RingSettings, peers: PeerAddress[]): void {
  if (peers.length !== s.worldSize) throw new DistConfigError(`peers lists ${peers.length} addresses, expected worldSize ${s.worldSize}`);
  peers.forEach((p, i) => {
    if (typeof p.host !== 'string' || !Number.isInteger(p.port) || p.port <= 0 || p.port > 65535) {
      throw new DistConfigError(`peers[${i}] must be {host, port} with a port in 1..65535, got ${JSON.stringify(p)}`);
    }
  });
}

/** Starts listening (port 0: ephemeral) so the port can be gathered before the peer list exists. */
export async function listenForRing(opts: RingOptions): Promise<RingListener> {
  const s = resolveSettings(opts);
  const transport = resolveTransport(opts);
  if (s.worldSize === 1) {
    return { port: 0, socketPath: null, connect: async () => new LocalCollective(), close: async () => undefined };
  }
  const host = opts.listen?.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && s.token === '') {
    throw new DistConfigError(`refusing to listen on ${host} without a token: set ${TOKEN_ENV} (or the token option) on every rank`);
  }
  if (transport === 'unix' && !isLoopbackHost(host)) {
    throw new DistConfigError(`transport 'unix' needs a loopback listen host (peers on this machine), got ${host}: use 'auto' or 'tcp' across hosts`);
  }
  const secure = resolveTls(opts.tls, s.token);
  const acceptor = new Acceptor(s, secure);
  const port = await acceptor.listen(host, opts.listen?.port ?? 0);
  if (transport !== 'tcp' && isLoopbackHost(host)) {
    try {
      await acceptor.listenUnix(unixSocketPath(host, port));
    } catch (error) {
      // 'auto' still has TCP; 'unix' has nothing else.
      if (transport === 'unix') {
        acceptor.close();
        throw error;
      }
      s.log(`rank ${s.rank} listens on TCP only: no unix socket (${(error as Error).message})`);
    }
  }
  return {
    port,
    socketPath: acceptor.socketPath,
    connect: async (peers) => {
      try {
        checkPeers(s, peers);
        if (transport === 'unix') {
          const remote = peers.find((p) => !isLoopbackHost(p.host));
          if (remote) throw new DistConfigError(`transport 'unix' reaches only this machine, but a peer is at ${remote.host}`);
        }
        const links = [dialRight(s, transport, peers[(s.rank + 1) % s.worldSize], secure), acceptor.left()];
        try {
          const [dialled, accepted] = await Promise.all(links);
          return new RingCollective(s, dialled, accepted);
        } catch (error) {
          // One link failed: close the other too, whenever it forms, rather than leave it open.
          for (const link of links) link.then((end) => end.socket.destroy(), () => undefined);
          throw error;
        }
      } finally {
        acceptor.close();
      }
    },
    close: async () => acceptor.close(),
  };
}

/** Listens on peers[rank] (or opts.listen) and forms the ring with fixed ports. */
export async function connectRing(opts: ConnectRingOptions): Promise<Collective> {
  const s = resolveSettings(opts);
  if (s.worldSize === 1) return new LocalCollective();
  checkPeers(s, opts.peers);
  const listener = await listenForRing({ ...opts, listen: opts.listen ?? opts.peers[opts.rank] });
  return listener.connect(opts.peers);
}
