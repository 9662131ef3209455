// Forming the ring. Each rank listens; rank r dials rank r+1 and accepts rank r-1. With port 0 the
// agent gathers every rank's ephemeral port from listenForRing first, then hands each rank the
// full peer list for connect(). Connections that fail the handshake are logged and closed; the
// listener keeps accepting until the real left neighbour has connected.
// Transport: ranks on one host talk over a Unix domain socket (fewer kernel cycles per byte than loopback TCP),
// other hosts over TCP. A rank listening on loopback also listens on a socket file whose name is derived
// from that address (see unixSocketPath), so a dialler finds it from host and port alone. Across hosts a
// rank listens beyond loopback and, with offerUnixSocket, on a socket of a unique name that the agents
// hand only to ranks on the same host (PeerAddress.socketPath). Framing and handshake are the same on both.
// The pieces: ring-options (settings), endpoints (names, dial targets), accept, dial, link-frames.
import { type Collective, LocalCollective } from './collective.ts';
import { DistConfigError } from './errors.ts';
import { isLoopbackHost } from './handshake.ts';
import { RingCollective, type RingSettings } from './ring-collective.ts';
import { resolveTls } from './tls-link.ts';
import {
  type ConnectRingOptions,
  type PeerAddress,
  type RingOptions,
  resolveSettings,
  resolveTransport,
  TOKEN_ENV,
} from './ring-options.ts';
import { uniqueSocketPath, unixSocketPath } from './endpoints.ts';
import { Acceptor } from './accept.ts';
import { dialRight } from './dial.ts';

export type { Collective, CollectiveStats } from './collective.ts';
export { LocalCollective } from './collective.ts';
export * from './ring-options.ts';
export { unixSocketPath } from './endpoints.ts';

export interface RingListener {
  /** The port this rank listens on (0 for a world of one, which needs no socket). */
  readonly port: number;
  /** The Unix socket this rank also listens on until the ring forms, or null (TCP only). */
  readonly socketPath: string | null;
  connect(peers: PeerAddress[]): Promise<Collective>;
  /** Stops listening without forming the ring (an agent aborting start-up). */
  close(): Promise<void>;
}

function checkPeers(s: RingSettings, peers: PeerAddress[]): void {
  if (peers.length !== s.worldSize) throw new DistConfigError(`peers lists ${peers.length} addresses, expected worldSize ${s.worldSize}`);
  peers.forEach((p, i) => {
    if (
      typeof p.host !== 'string' ||
      !Number.isInteger(p.port) ||
      p.port <= 0 ||
      p.port > 65535 ||
      !(p.socketPath === undefined || typeof p.socketPath === 'string')
    ) {
      throw new DistConfigError(`peers[${i}] must be {host, port, socketPath?} with a port in 1..65535, got ${JSON.stringify(p)}`);
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
    throw new DistConfigError(
      `transport 'unix' needs a loopback listen host (peers on this machine), got ${host}: use 'auto' or 'tcp' across hosts`,
    );
  }
  const secure = resolveTls(opts.tls, s.token);
  const acceptor = new Acceptor(s, secure);
  const port = await acceptor.listen(host, opts.listen?.port ?? 0);
  if (transport !== 'tcp' && (isLoopbackHost(host) || opts.offerUnixSocket === true)) {
    try {
      await acceptor.listenUnix(isLoopbackHost(host) ? unixSocketPath(host, port) : uniqueSocketPath(port));
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
          for (const link of links)
            link.then(
              (end) => end.socket.destroy(),
              () => undefined,
            );
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
