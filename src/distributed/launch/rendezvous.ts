// The rendezvous of a multi-host run, held by node 0's agent (torchrun's static rendezvous, with the
// store folded into the agent). Every node's agent, node 0's own included, joins over TCP:
//   node 0 -> CHALLENGE  protocol version, a fresh nonce, the name of a probe file in the run directory
//   agent  -> JOIN       what it runs (node rank, workers, hash and keys of the resolved config, the
//                        digest of the probe file as it reads it), its own nonce, and
//                        HMAC(token, "agent" | node 0's nonce | join), the token never on the wire
//   node 0 -> WELCOME    HMAC(token, "master" | agent's nonce | node 0's nonce), or REFUSED with the reason
// Once all nodes joined: ASSIGN (world size, this node's first global rank: ranks are node-major), each
// agent starts its workers and sends their PORTS, node 0 answers every agent with the PEERS (hosts,
// ports, and Unix sockets for ranks on the agent's own host). The connection then stays open as the
// control channel: a FAILED from one agent, or its silence, becomes a STOP to all others; DONE ends it.
// After a failure every agent joins again (the next round), as torchrun's elastic agent does.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { macsMatch, NONCE_BYTES, tokenMac } from '../collective/handshake.ts';
import type { PeerAddress } from '../collective/ring.ts';
import { ControlChannel, type Message } from './control-channel.ts';

export const RDZV_PROTOCOL_VERSION = 1;
const MAC_LABEL = `medvae-rdzv v${RDZV_PROTOCOL_VERSION}`;
/** Keys named in a mismatch message, at most; the count of the rest follows. */
const SHOWN_KEYS = 6;

/** A refusal or a rendezvous that cannot complete: not a failure to restart from. */
export class RendezvousError extends Error {
  override name = 'RendezvousError';
}

/** What an agent tells node 0 about itself. */
export interface JoinRequest {
  version: number;
  nodeRank: number;
  nnodes: number;
  /** Workers on this node. */
  localWorldSize: number;
  /** Address its workers are reached at; default: the address node 0 sees the agent connect from. */
  localAddr?: string;
  hostname: string;
  /** The resolved config and the launcher settings every node must share, flattened to dotted keys. */
  settings: Record<string, string>;
  /** sha256 of the probe file as this node reads it from the run directory; null when it is not there. */
  probeDigest: string | null;
}

export interface Assignment {
  round: number;
  worldSize: number;
  /** Global rank of this node's first worker. */
  rankOffset: number;
  nnodes: number;
  /** Where every worker of the round resumes from (node 0's choice), or null for the start. */
  resume: string | null;
}

/** A worker's data-plane address as its agent reports it; node 0 adds the host. */
export interface WorkerPort {
  port: number;
  socketPath: string | null;
}

export interface RankAddress extends PeerAddress {
  node: number;
}

/** Flattens a config (or any JSON value) into dotted keys with JSON values, for comparison key by key. */
export function flattenSettings(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flattenSettings(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = JSON.stringify(value ?? null);
  }
  return out;
}

function settingsHash(settings: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(settings).sort()) h.update(`${k}=${settings[k]}\n`);
  return h.digest('hex');
}

/** The keys on which two nodes differ, as "key (node 0: a, node 1: b)". */
export function differingKeys(a: Record<string, string>, b: Record<string, string>, nodeA: number, nodeB: number): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} (node ${nodeA}: ${a[k] ?? 'unset'}, node ${nodeB}: ${b[k] ?? 'unset'})`);
}

function joinBytes(j: JoinRequest): Buffer {
  return Buffer.from(JSON.stringify(j));
}

function hostOf(socket: Socket): string {
  return (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
}

export interface RendezvousServerOptions {
  /** Address the rendezvous binds (node 0's master address, or all interfaces). */
  bindHost: string;
  /** How the other nodes reach it (--master-addr), for messages. */
  masterAddr: string;
  port: number;
  token: string;
  nnodes: number;
  runDir: string;
  /** Node 0's own join: every other node must match its settings. */
  reference: Pick<JoinRequest, 'settings'>;
  rdzvTimeoutMs: number;
  liveTimeoutMs: number;
  log: (line: string) => void;
  /** Where the next round resumes from: node 0's agent knows, having seen the last failure. */
  resume: () => string | null;
}

interface Member {
  node: number;
  host: string;
  join: JoinRequest;
  channel: ControlChannel;
  ports?: WorkerPort[];
  done: boolean;
}

type Phase = 'joining' | 'ports' | 'running';

/** Node 0's side: admits agents round after round until closed. */
export class RendezvousServer {
  private readonly server: Server;
  private readonly probeName = `.medvae-rdzv-${randomBytes(8).toString('hex')}`;
  private readonly probeDigest: string;
  private members = new Map<number, Member>();
  private phase: Phase = 'joining';
  private round = 0;
  private deadline: NodeJS.Timeout | null = null;
  private readonly channels = new Set<ControlChannel>();

  private constructor(private readonly o: RendezvousServerOptions) {
    // The probe tells each node whether it sees the files node 0 writes: checkpoints live there.
    mkdirSync(o.runDir, { recursive: true });
    const secret = randomBytes(16).toString('hex');
    writeFileSync(join(o.runDir, this.probeName), secret);
    this.probeDigest = createHash('sha256').update(secret).digest('hex');
    this.server = net.createServer((socket) => this.admit(socket));
  }

  static async start(o: RendezvousServerOptions): Promise<RendezvousServer> {
    const s = new RendezvousServer(o);
    try {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.server.listen({ host: o.bindHost, port: o.port }, () => resolve());
      });
    } catch (e) {
      s.removeProbe();
      const code = (e as NodeJS.ErrnoException).code;
      const hint = code === 'EADDRINUSE' ? ': another run (or a stale agent) holds it; pick another --master-port' : '';
      throw new RendezvousError(`node 0 cannot listen for the rendezvous on ${o.bindHost}:${o.port} (${(e as Error).message})${hint}`);
    }
    s.openRound();
    return s;
  }

  /** Waits (briefly) for the agents of a finished round to say done, then stops. */
  async close(graceMs = 2000): Promise<void> {
    const end = Date.now() + graceMs;
    while ([...this.members.values()].some((m) => !m.done && !m.channel.isClosed) && Date.now() < end) await sleep(50);
    if (this.deadline) clearTimeout(this.deadline);
    for (const c of this.channels) c.close('node 0 finished');
    this.server.close();
    this.removeProbe();
  }

  private removeProbe(): void {
    rmSync(join(this.o.runDir, this.probeName), { force: true });
  }

  private openRound(): void {
    this.phase = 'joining';
    this.members = new Map();
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      const missing = Array.from({ length: this.o.nnodes }, (_, i) => i).filter((n) => !this.members.has(n));
      const joined = [...this.members.keys()].sort((a, b) => a - b);
      this.refuseAll(
        `rendezvous incomplete after ${this.o.rdzvTimeoutMs / 1000} s (--rdzv-timeout): node(s) ${missing.join(', ')} did not join` +
          ` (joined: ${joined.join(', ') || 'none'}); check that they started with the same --nnodes and can reach ${this.o.masterAddr}:${this.o.port}`,
      );
    }, this.o.rdzvTimeoutMs);
  }

  private refuseAll(reason: string): void {
    this.o.log(reason);
    for (const m of this.members.values()) m.channel.sendAndClose({ type: 'refused', reason, fatal: true }, reason);
    this.members.clear();
    this.fatal = reason;
  }

  /** Set when the rendezvous can never complete; later joiners hear it too. */
  private fatal: string | null = null;

  private admit(socket: Socket): void {
    const channel = new ControlChannel(socket, this.o.liveTimeoutMs);
    this.channels.add(channel);
    void channel.closedBy.then(() => this.channels.delete(channel));
    const host = hostOf(socket);
    const nonce = randomBytes(NONCE_BYTES);
    let member: Member | null = null;
    channel.send({ type: 'challenge', version: RDZV_PROTOCOL_VERSION, nonce: nonce.toString('hex'), probe: this.probeName });
    const refuse = (reason: string, fatal: boolean): void => {
      this.o.log(`refused an agent from ${host}: ${reason}`);
      channel.sendAndClose({ type: 'refused', reason, fatal }, reason);
    };
    channel.listen((m) => {
      if (member === null) {
        if (m.type !== 'join') return refuse(`expected a join, got '${m.type}'`, true);
        const j = m.join as JoinRequest;
        const mac = Buffer.from(String(m.mac), 'hex');
        if (typeof j !== 'object' || j === null || !macsMatch(mac, tokenMac(this.o.token, `${MAC_LABEL} agent`, nonce, joinBytes(j)))) {
          return refuse(`bad token: the join's proof does not match node 0's MEDVAE_DIST_TOKEN; give every node the same token`, true);
        }
        const theirNonce = Buffer.from(String(m.nonce), 'hex');
        channel.send({ type: 'welcome', mac: tokenMac(this.o.token, `${MAC_LABEL} master`, theirNonce, nonce).toString('hex') });
        member = this.accept(j, host, channel, refuse);
        return;
      }
      this.onMessage(member, m);
    });
    void channel.closedBy.then((why) => {
      if (member !== null && this.members.get(member.node) === member) this.lost(member, why);
    });
  }

  /** Checks an authenticated join; returns the member, or null after refusing it. */
  private accept(j: JoinRequest, host: string, channel: ControlChannel, refuse: (reason: string, fatal: boolean) => void): Member | null {
    const who = `node ${j.nodeRank} (${j.hostname}, ${host})`;
    if (this.fatal !== null) return refuse(this.fatal, true), null;
    if (j.version !== RDZV_PROTOCOL_VERSION) return refuse(`${who} speaks rendezvous protocol ${j.version}, node 0 speaks ${RDZV_PROTOCOL_VERSION}: run one medvae version everywhere`, true), null;
    if (j.nnodes !== this.o.nnodes) return refuse(`${who} was started with --nnodes ${j.nnodes}, node 0 with ${this.o.nnodes}`, true), null;
    if (!Number.isInteger(j.nodeRank) || j.nodeRank < 0 || j.nodeRank >= this.o.nnodes) return refuse(`${who}: node rank outside 0..${this.o.nnodes - 1}`, true), null;
    if (settingsHash(j.settings) !== settingsHash(this.o.reference.settings)) {
      const keys = differingKeys(this.o.reference.settings, j.settings, 0, j.nodeRank);
      const more = keys.length > SHOWN_KEYS ? ` and ${keys.length - SHOWN_KEYS} more` : '';
      const reason = `${who} runs another config than node 0: ${keys.slice(0, SHOWN_KEYS).join('; ')}${more}; give every node the same config, flags and medvae version`;
      refuse(reason, true);
      this.refuseAll(reason);
      return null;
    }
    if (j.probeDigest !== this.probeDigest) {
      const runDir = this.o.reference.settings['dist.run_dir'] ?? this.o.runDir;
      const reason = `${who} cannot see the run directory ${runDir} that node 0 writes (its probe file ${this.probeName} is ${j.probeDigest === null ? 'missing' : 'different'} there): mount the same shared volume at the same path on every node`;
      refuse(reason, true);
      this.refuseAll(reason);
      return null;
    }
    const present = this.members.get(j.nodeRank);
    if (this.phase !== 'joining' || (present && !present.channel.isClosed)) {
      // A restarted agent may arrive before node 0 noticed its predecessor's loss: it asks again.
      refuse(`node rank ${j.nodeRank} is already in the running round (from ${present?.host ?? '?'}): two agents with the same NODE_RANK?`, false);
      return null;
    }
    const member: Member = { node: j.nodeRank, host: j.localAddr || host, join: j, channel, done: false };
    this.members.set(j.nodeRank, member);
    this.o.log(`${who} joined round ${this.round} (${this.members.size} of ${this.o.nnodes})`);
    if (this.members.size === this.o.nnodes) this.assign();
    return member;
  }

  private sorted(): Member[] {
    return [...this.members.values()].sort((a, b) => a.node - b.node);
  }

  private assign(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.phase = 'ports';
    const members = this.sorted();
    const worldSize = members.reduce((n, m) => n + m.join.localWorldSize, 0);
    let offset = 0;
    for (const m of members) {
      m.channel.send({ type: 'assign', round: this.round, worldSize, rankOffset: offset, nnodes: this.o.nnodes, resume: this.o.resume() });
      offset += m.join.localWorldSize;
    }
  }

  private onMessage(member: Member, m: Message): void {
    if (this.members.get(member.node) !== member) return;
    if (m.type === 'ports' && this.phase === 'ports') {
      member.ports = m.ports as WorkerPort[];
      const members = this.sorted();
      if (members.every((x) => x.ports !== undefined)) {
        const peers: RankAddress[] = members.flatMap((x) => x.ports!.map((p) => ({ node: x.node, host: x.host, port: p.port, ...(p.socketPath ? { socketPath: p.socketPath } : {}) })));
        this.phase = 'running';
        for (const x of members) x.channel.send({ type: 'peers', peers });
      }
    } else if (m.type === 'failed') {
      this.stopRound(member, String(m.reason));
    } else if (m.type === 'done') {
      member.done = true;
    }
  }

  private lost(member: Member, why: string): void {
    if (member.done) return;
    const reason = `node ${member.node}'s agent (${member.host}) ${why === 'connection closed' ? 'went away (killed, or its host stopped)' : why}`;
    if (this.phase === 'joining') {
      this.members.delete(member.node);
      this.o.log(`${reason}; waiting for it to join again`);
      return;
    }
    this.stopRound(member, reason);
  }

  /** One node failed: every other node stops its workers; the next round opens for those that restart. */
  private stopRound(from: Member, reason: string): void {
    const line = reason.startsWith('node ') ? reason : `node ${from.node} (${from.host}): ${reason}`;
    this.o.log(`stopping round ${this.round}: ${line}`);
    for (const m of this.members.values()) if (m !== from) m.channel.sendAndClose({ type: 'stop', reason: line }, 'round stopped');
    from.channel.close('round stopped');
    this.round++;
    this.openRound();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface JoinOptions {
  masterAddr: string;
  masterPort: number;
  token: string;
  request: Omit<JoinRequest, 'probeDigest' | 'version'>;
  runDir: string;
  rdzvTimeoutMs: number;
  liveTimeoutMs: number;
  log: (line: string) => void;
}

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
  ) {
    let stop!: (why: string) => void;
    this.stopped = new Promise((resolve) => (stop = resolve));
    channel.listen((m) => {
      if (m.type === 'peers') this.peersWaiter?.resolve(m.peers as RankAddress[]);
      else if (m.type === 'stop') stop(`stopped by node 0: ${String(m.reason)}`);
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

  /** The probe digest this node sees in the run directory (null: the file is not there). */
  static probeDigest(runDir: string, probe: string): string | null {
    try {
      return createHash('sha256').update(readFileSync(join(runDir, probe))).digest('hex');
    } catch {
      return null;
    }
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
    channel.listen((m) => {
      if (m.type === 'refused') return finish({ reason: String(m.reason), fatal: m.fatal !== false });
      if (state === 'challenge' && m.type === 'challenge') {
        if (m.version !== RDZV_PROTOCOL_VERSION) {
          return finish({ reason: `node 0 at ${where} speaks rendezvous protocol ${String(m.version)}, this node ${RDZV_PROTOCOL_VERSION}: run one medvae version everywhere`, fatal: true });
        }
        serverNonce = Buffer.from(String(m.nonce), 'hex');
        const request: JoinRequest = { ...o.request, version: RDZV_PROTOCOL_VERSION, probeDigest: RendezvousSession.probeDigest(o.runDir, String(m.probe)) };
        const mac = tokenMac(o.token, `${MAC_LABEL} agent`, serverNonce, joinBytes(request));
        channel.send({ type: 'join', join: request, nonce: myNonce.toString('hex'), mac: mac.toString('hex') });
        state = 'welcome';
      } else if (state === 'welcome' && m.type === 'welcome') {
        if (!macsMatch(Buffer.from(String(m.mac), 'hex'), tokenMac(o.token, `${MAC_LABEL} master`, myNonce, serverNonce))) {
          return finish({ reason: `node 0 at ${where} does not prove it holds this node's MEDVAE_DIST_TOKEN: give every node the same token`, fatal: true });
        }
        state = 'assign';
        o.log(`node ${o.request.nodeRank} joined the rendezvous at ${where}; waiting for all nodes`);
      } else if (state === 'assign' && m.type === 'assign') {
        const resume = typeof m.resume === 'string' ? m.resume : null;
        const assignment: Assignment = { round: Number(m.round), worldSize: Number(m.worldSize), rankOffset: Number(m.rankOffset), nnodes: Number(m.nnodes), resume };
        finish(new RendezvousSession(channel, assignment, where));
      } else {
        finish({ reason: `node 0 at ${where} sent '${m.type}' during the rendezvous (${state} expected)`, fatal: true });
      }
    });
  });
}
