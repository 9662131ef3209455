// The accepting side of a ring link: listen (TCP, and a Unix socket for peers on this host), run
// the handshake with whoever connects, and hand over the one connection that is the left neighbour.
import { chmodSync, rmSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { DistConfigError, PeerError, ProtocolError } from './errors.ts';
import { FrameReader, FrameType } from './frame.ts';
import {
  decodeHello,
  decodeProof,
  encodeAck,
  encodeChallenge,
  HANDSHAKE_MAX_BYTES,
  handshakeMac,
  helloRefusal,
  macsMatch,
  NONCE_BYTES,
} from './handshake.ts';
import type { LinkEnd, RingSettings } from './ring-collective.ts';
import { TOKEN_ENV } from './ring-options.ts';
import { fitsSocketPath, isOwnSocket, MAX_SOCKET_PATH_BYTES } from './endpoints.ts';
import { collect, holdingHandler, listenOn, sendFrame } from './link-frames.ts';
import { tlsServerOptions } from './tls-link.ts';

/** Accepts connections, over TCP and optionally a Unix socket, until the left neighbour has passed the handshake. */
export class Acceptor {
  private readonly tcpServer: Server;
  private unixServer: Server | null = null;
  /** The socket file this acceptor created, removed by close(). */
  socketPath: string | null = null;
  /** Handshakes under way, each with the refusal that ends it. */
  private readonly pending = new Map<Socket, (reason: string) => void>();
  private leftEnd: LinkEnd | null = null;
  private onLeft: ((end: LinkEnd) => void) | null = null;
  private stopWaiting: ((error: Error) => void) | null = null;

  constructor(
    private readonly s: RingSettings,
    secure: boolean,
  ) {
    this.tcpServer = this.newServer(secure);
  }

  private newServer(secure: boolean): Server {
    if (!secure) return net.createServer({ noDelay: true }, (socket) => this.handshake(socket));
    const server = tls.createServer({ ...tlsServerOptions(this.s.token, this.s.timeoutMs), noDelay: true }, (socket) =>
      this.handshake(socket),
    );
    // A peer without the token fails here, before any frame: log it like any other refusal.
    server.on('tlsClientError', (e, socket) =>
      this.s.log(
        `rank ${this.s.rank} refused a connection from ${socket.remoteAddress}:${socket.remotePort}: TLS handshake failed (${e.message}); does it hold this rank's ${TOKEN_ENV}?`,
      ),
    );
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
    if (!fitsSocketPath(path))
      throw new DistConfigError(`socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: set TMPDIR to a shorter directory`);
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
    // Refused here, not when their close events come: the log says who ended them, and a ring thread
    // that ends with this close still sends the lines back.
    for (const refuse of [...this.pending.values()]) refuse('this rank stopped listening before the handshake completed');
    // The socket file goes first, while this rank still holds the TCP port its name is derived from:
    // once the port is free another run may claim the same name. server.close() only calls back once
    // every accepted socket has closed, the ring's left link included, so nothing waits on it.
    if (this.socketPath !== null) rmSync(this.socketPath, { force: true });
    if (this.unixServer?.listening) this.unixServer.close();
    if (this.tcpServer.listening) this.tcpServer.close();
    if (this.leftEnd === null)
      this.stopWaiting?.(new DistConfigError(`rank ${this.s.rank}: listener closed before the left neighbour connected`));
  }

  private handshake(socket: Socket): void {
    const s = this.s;
    const remote = socket.remoteAddress === undefined ? 'the unix socket' : `${socket.remoteAddress}:${socket.remotePort}`;
    const leftRank = (s.rank - 1 + s.worldSize) % s.worldSize;
    let settled = false;
    const refuse = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reader.stop();
      this.pending.delete(socket);
      s.log(`rank ${s.rank} refused a connection from ${remote}: ${reason}`);
      socket.destroy();
    };
    this.pending.set(socket, refuse);
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
      sendFrame(
        socket,
        FrameType.Ack,
        encodeAck({ rank: s.rank, worldSize: s.worldSize, mac: handshakeMac(s.token, 'acceptor', sent.bytes, nonce) }),
      );
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
