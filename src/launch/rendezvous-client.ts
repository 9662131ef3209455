// Every agent's side of the rendezvous (the protocol: rendezvous-protocol.ts): reach node 0 (retrying
// until it listens), prove the token, join, and then hold the round's control channel: the peer list
// arrives on it, and so does a stop when another node fails.
import { randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import { macsMatch, NONCE_BYTES } from '../collective/handshake.ts';
import { ControlChannel } from './control-channel.ts';
import {
  agentMac,
  masterMac,
  probeDigest,
  RDZV_PROTOCOL_VERSION,
  RendezvousError,
  sleep,
  type Assignment,
  type JoinRequest,
  type RankAddress,
  type WorkerPort,
} from './rendezvous-protocol.ts';

export interface JoinOptions {
  masterAddr: string;
  masterPort: number;
  token: string;
  request: Omit<JoinRequest, 'probeDigest' | 'version'>;
  runDir: string;
  rdzvTimeoutMs: number;
  liveTimeoutMs: number;
  log: (line: string) => void;
  /** Ctrl-C or SIGTERM: stop waiting for the other nodes. */
  signal?: AbortSignal;
}

const INTERRUPTED = 'interrupted while waiting for the other nodes at the rendezvous (no step of this round was taken)';

/** An agent's membership of one round: its assignment, then the peer list, then the control channel. */
export class RendezvousSession {
  /** Resolves with the reason when node 0 stops the round or the connection is lost. */
  readonly stopped: Promise<string>;
  private peersWaiter: { resolve: (p: RankAddress[]) => void; reject: (e: Error) => void } | null = null;
  private finished = false;

  /** Made by join() once node 0 has assigned this node its ranks. */
  constructor(
    private readonly channel: ControlChannel,
    readonly assignment: Assignment,
    private readonly where: string,
    nodeRank: number,
  ) {
    let stop!: (why: string) => void;
    this.stopped = new Promise((resolve) => (stop = resolve));
    channel.listen((m) => {
      if (m.type === 'peers') this.peersWaiter?.resolve(m.peers as RankAddress[]);
      else if (m.type === 'stop') stop(nodeRank === 0 ? String(m.reason) : `stopped by node 0: ${String(m.reason)}`);
      else if (m.type === 'refused') stop(String(m.reason));
    });
    void channel.closedBy.then((why) => {
      if (this.finished) return;
      const reason = `lost the rendezvous with node 0 at ${where}: ${why} (node 0's agent died, or the network between the nodes is down)`;
      stop(reason);
      this.peersWaiter?.reject(new Error(reason));
    });
  }

  /** Connects (retrying until node 0 listens), proves the token, joins, and waits for the assignment. */
  static async join(o: JoinOptions): Promise<RendezvousSession> {
    const where = `${o.masterAddr}:${o.masterPort}`;
    const deadline = Date.now() + o.rdzvTimeoutMs;
    let lastRefusal = '';
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw new RendezvousError(INTERRUPTED);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RendezvousError(
          lastRefusal ||
            `node ${o.request.nodeRank} could not reach node 0's rendezvous at ${where} within ${o.rdzvTimeoutMs / 1000} s (--rdzv-timeout): is node 0's agent running, and are --master-addr/--master-port (MASTER_ADDR/MASTER_PORT) right?`,
        );
      }
      const socket = await connectOnce(o.masterAddr, o.masterPort, Math.min(left, 5000));
      if (socket === null) {
        await sleep(Math.min(100 * 2 ** attempt, 1000));
        continue;
      }
      const outcome = await handshake(socket, o, where, deadline);
      if (outcome instanceof RendezvousSession) return outcome;
      if (outcome.fatal) throw new RendezvousError(outcome.reason);
      lastRefusal = `node 0 at ${where} kept refusing node ${o.request.nodeRank}: ${outcome.reason}`;
      await sleep(500);
    }
  }

  /** Reports this node's worker ports; resolves with every rank's address once all nodes reported. */
  exchangePorts(ports: WorkerPort[]): Promise<RankAddress[]> {
    return new Promise((resolve, reject) => {
      this.peersWaiter = { resolve, reject };
      this.channel.send({ type: 'ports', ports });
    });
  }

  fail(reason: string): void {
    this.finished = true;
    this.channel.sendAndClose({ type: 'failed', reason }, 'failed');
  }

  done(): void {
    this.finished = true;
    this.channel.sendAndClose({ type: 'done' }, 'done');
  }

  close(): void {
    this.finished = true;
    this.channel.close('closed');
  }

  describe(): string {
    return this.where;
  }
}

/** A connected socket, or null while nobody listens there yet (or the address does not resolve yet). */
function connectOnce(host: string, port: number, timeoutMs: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(null);
    });
  });
}

type Refusal = { reason: string; fatal: boolean };

function handshake(socket: Socket, o: JoinOptions, where: string, deadline: number): Promise<RendezvousSession | Refusal> {
  const channel = new ControlChannel(socket, o.liveTimeoutMs);
  return new Promise((resolve) => {
    let state: 'challenge' | 'welcome' | 'assign' = 'challenge';
    let serverNonce = Buffer.alloc(0);
    const myNonce = randomBytes(NONCE_BYTES);
    // Node 0 owns the deadline and says which nodes are missing; this timer only covers a node 0 that went quiet.
    const timer = setTimeout(
      () => finish({ reason: `node 0 at ${where} did not complete the rendezvous within --rdzv-timeout`, fatal: true }),
      Math.max(0, deadline - Date.now()) + o.liveTimeoutMs,
    );
    let settled = false;
    const finish = (r: RendezvousSession | Refusal): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!(r instanceof RendezvousSession)) channel.close('refused');
      resolve(r);
    };
    void channel.closedBy.then((why) => finish({ reason: `node 0 at ${where} closed the rendezvous connection: ${why}`, fatal: false }));
    const onAbort = (): void => finish({ reason: INTERRUPTED, fatal: true });
    o.signal?.addEventListener('abort', onAbort, { once: true });
    void channel.closedBy.then(() => o.signal?.removeEventListener('abort', onAbort));
    channel.listen((m) => {
      if (m.type === 'refused') return finish({ reason: String(m.reason), fatal: m.fatal !== false });
      if (state === 'challenge' && m.type === 'challenge') {
        if (m.version !== RDZV_PROTOCOL_VERSION) {
          return finish({
            reason: `node 0 at ${where} speaks rendezvous protocol ${String(m.version)}, this node ${RDZV_PROTOCOL_VERSION}: run one medvae version everywhere`,
            fatal: true,
          });
        }
        serverNonce = Buffer.from(String(m.nonce), 'hex');
        const request: JoinRequest = { ...o.request, version: RDZV_PROTOCOL_VERSION, probeDigest: probeDigest(o.runDir, String(m.probe)) };
        const mac = agentMac(o.token, serverNonce, request);
        channel.send({ type: 'join', join: request, nonce: myNonce.toString('hex'), mac: mac.toString('hex') });
        state = 'welcome';
      } else if (state === 'welcome' && m.type === 'welcome') {
        if (!macsMatch(Buffer.from(String(m.mac), 'hex'), masterMac(o.token, myNonce, serverNonce))) {
          return finish({
            reason: `node 0 at ${where} does not prove it holds this node's MEDVAE_DIST_TOKEN: give every node the same token`,
            fatal: true,
          });
        }
        state = 'assign';
        o.log(`node ${o.request.nodeRank} joined the rendezvous at ${where}; waiting for all nodes`);
      } else if (state === 'assign' && m.type === 'assign') {
        const resume = typeof m.resume === 'string' ? m.resume : null;
        const assignment: Assignment = {
          round: Number(m.round),
          worldSize: Number(m.worldSize),
          rankOffset: Number(m.rankOffset),
          nnodes: Number(m.nnodes),
          resume,
        };
        finish(new RendezvousSession(channel, assignment, where, o.request.nodeRank));
      } else {
        finish({ reason: `node 0 at ${where} sent '${m.type}' during the rendezvous (${state} expected)`, fatal: true });
      }
    });
  });
}
