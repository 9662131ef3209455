// Forming the ring. Each rank listens; rank r dials rank r+1 and accepts rank r-1. With port 0 the
// coordinator gathers every rank's ephemeral port from listenForRing first, then hands each rank the
// full peer list for connect(). Connections that fail the handshake are logged and closed; the
// listener keeps accepting until the real left neighbour has connected.
import net, { type Server, type Socket } from 'node:net';
import { type Collective, LocalCollective } from './collective.ts';
import { DistConfigError, PeerError, ProtocolError } from './errors.ts';
import { encodeHeader, FrameReader, FrameType, type FrameHandler, type PayloadSink } from './frame.ts';
import {
  decodeAck,
  decodeHello,
  encodeAck,
  encodeHello,
  HANDSHAKE_MAX_BYTES,
  helloRefusal,
  isLoopbackHost,
  PROTOCOL_VERSION,
} from './handshake.ts';
import { type LinkEnd, RingCollective, type RingSettings } from './ring-collective.ts';

export type { Collective, CollectiveStats } from './collective.ts';
export { LocalCollective } from './collective.ts';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface RingOptions {
  rank: number;
  worldSize: number;
  /** Where this rank listens; default 127.0.0.1 and an ephemeral port. */
  listen?: PeerAddress;
  /** Shared secret; default env MEDVAE_DIST_TOKEN. Required to listen beyond loopback. */
  token?: string;
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
  connect(peers: PeerAddress[]): Promise<Collective>;
  /** Stops listening without forming the ring (a coordinator aborting start-up). */
  close(): Promise<void>;
}

export const DEFAULT_BUCKET_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const TOKEN_ENV = 'MEDVAE_DIST_TOKEN';

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
  socket.write(encodeHeader({ payloadBytes: payload.length, type, step: 0, opSeq: 0, bucket: 0, chunk: 0 }));
  socket.write(payload);
}

/** Accepts connections until the left neighbour has passed the handshake. */
class Acceptor {
  private readonly server: Server;
  private readonly pending = new Set<Socket>();
  private leftEnd: LinkEnd | null = null;
  private onLeft: ((end: LinkEnd) => void) | null = null;
  private stopWaiting: ((error: Error) => void) | null = null;

  constructor(private readonly s: RingSettings) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.handshake(socket));
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new DistConfigError(`listening on ${host}:${port} gave no TCP port`);
    return address.port;
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
    // server.close() only calls back once every accepted socket has closed, the ring's left link
    // included, so nothing waits on it.
    if (this.server.listening) this.server.close();
    if (this.leftEnd === null) this.stopWaiting?.(new DistConfigError(`rank ${this.s.rank}: listener closed before the left neighbour connected`));
  }

  private handshake(socket: Socket): void {
    const s = this.s;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
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
    const reader = FrameReader.onDataEvents(socket, {
      maxPayloadBytes: HANDSHAKE_MAX_BYTES,
      onError: (e) => refuse(e.message),
      onHeader: (h) => {
        if (h.type !== FrameType.Hello) throw new ProtocolError(`expected a hello frame, got frame type ${h.type}`);
        return collect((payload) => {
          const hello = decodeHello(payload);
          const refusal = helloRefusal(hello, { ...s, rank: leftRank });
          if (refusal !== null) return refuse(refusal);
          if (this.leftEnd !== null) return refuse(`rank ${leftRank} is already connected`);
          settled = true;
          clearTimeout(timer);
          this.pending.delete(socket);
          reader.setHandler(holdingHandler(0, () => undefined));
          sendFrame(socket, FrameType.Ack, encodeAck({ rank: s.rank, worldSize: s.worldSize }));
          s.log(`rank ${s.rank} accepted rank ${leftRank} from ${remote}`);
          this.leftEnd = { socket, reader };
          this.onLeft?.(this.leftEnd);
        });
      },
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One attempt to connect to the right neighbour and pass its handshake. */
function dialOnce(s: RingSettings, peer: PeerAddress, deadline: number): Promise<LinkEnd> {
  const rightRank = (s.rank + 1) % s.worldSize;
  return new Promise((resolve, reject) => {
    const { reader, onread } = FrameReader.withReadBuffer({
      maxPayloadBytes: HANDSHAKE_MAX_BYTES,
      onError: (e) => settle(new PeerError(rightRank, `rank ${rightRank} answered the handshake badly: ${e.message}`)),
      onHeader: (h) => {
        if (h.type !== FrameType.Ack) throw new ProtocolError(`expected an ack frame, got frame type ${h.type}`);
        return collect((payload) => {
          const ack = decodeAck(payload);
          if (ack.rank !== rightRank || ack.worldSize !== s.worldSize) {
            throw new ProtocolError(`rank ${ack.rank} of ${ack.worldSize} answered, expected rank ${rightRank} of ${s.worldSize}`);
          }
          settle(null);
        });
      },
    });
    const socket = net.connect({ host: peer.host, port: peer.port, noDelay: true, onread });
    reader.bind(socket);
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
      () => settle(new PeerError(rightRank, `rank ${rightRank} at ${peer.host}:${peer.port} did not complete the handshake in time`)),
      Math.max(0, deadline - Date.now()),
    );
    socket.on('error', (e) => settle(e));
    socket.on('close', () =>
      settle(new PeerError(rightRank, `rank ${rightRank} at ${peer.host}:${peer.port} closed the connection during the handshake (it refused this rank's token, version or sizes: see its log)`)),
    );
    socket.on('connect', () => {
      const hello = { version: PROTOCOL_VERSION, rank: s.rank, worldSize: s.worldSize, bucketBytes: s.bucketBytes, chunkBytes: s.chunkBytes, token: s.token };
      sendFrame(socket, FrameType.Hello, encodeHello(hello));
    });
  });
}

/** Dials the right neighbour, retrying while it is not listening yet, until timeoutMs. */
async function dialRight(s: RingSettings, peer: PeerAddress): Promise<LinkEnd> {
  const deadline = Date.now() + s.timeoutMs;
  const rightRank = (s.rank + 1) % s.worldSize;
  for (let attempt = 0; ; attempt++) {
    try {
      return await dialOnce(s, peer, deadline);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' && Date.now() < deadline) {
        await sleep(Math.min(20 * 2 ** attempt, 500));
        continue;
      }
      if (error instanceof PeerError) throw error;
      throw new PeerError(rightRank, `rank ${s.rank} could not connect to rank ${rightRank} at ${peer.host}:${peer.port}: ${(error as Error).message}`);
    }
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
  if (s.worldSize === 1) {
    return { port: 0, connect: async () => new LocalCollective(), close: async () => undefined };
  }
  const host = opts.listen?.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && s.token === '') {
    throw new DistConfigError(`refusing to listen on ${host} without a token: set ${TOKEN_ENV} (or the token option) on every rank`);
  }
  const acceptor = new Acceptor(s);
  const port = await acceptor.listen(host, opts.listen?.port ?? 0);
  return {
    port,
    connect: async (peers) => {
      try {
        checkPeers(s, peers);
        const links = [dialRight(s, peers[(s.rank + 1) % s.worldSize]), acceptor.left()];
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
