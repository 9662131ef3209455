// Node 0's side of the rendezvous (the protocol: rendezvous-protocol.ts): admits agents round after
// round, assigns node-major ranks, gathers and hands out the workers' addresses, and turns one node's
// failure or silence into a stop for all others.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { macsMatch, NONCE_BYTES } from '../collective/handshake.ts';
import { ControlChannel, type Message } from './control-channel.ts';
import {
  agentMac,
  differingKeys,
  masterMac,
  RDZV_PROTOCOL_VERSION,
  RendezvousError,
  settingsHash,
  sleep,
  type JoinRequest,
  type RankAddress,
  type WorkerPort,
} from './rendezvous-protocol.ts';

const PROBE_PREFIX = '.medvae-rdzv-';
/** Keys named in a mismatch message, at most; the count of the rest follows. */
const SHOWN_KEYS = 6;

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
  private readonly probeName = `${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
  private readonly probeDigest: string;
  private members = new Map<number, Member>();
  private phase: Phase = 'joining';
  private round = 0;
  private deadline: NodeJS.Timeout | null = null;
  private readonly channels = new Set<ControlChannel>();
  /** Set when the rendezvous can never complete; later joiners hear it too. */
  private fatal: string | null = null;

  private constructor(private readonly o: RendezvousServerOptions) {
    // The probe tells each node whether it sees the files node 0 writes: checkpoints live there.
    mkdirSync(o.runDir, { recursive: true });
    // A node 0 killed earlier in this run directory left its probe behind.
    for (const name of readdirSync(o.runDir)) if (name.startsWith(PROBE_PREFIX)) rmSync(join(o.runDir, name), { force: true });
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
        if (typeof j !== 'object' || j === null || !macsMatch(mac, agentMac(this.o.token, nonce, j))) {
          return refuse(`bad token: the join's proof does not match node 0's MEDVAE_DIST_TOKEN; give every node the same token`, true);
        }
        const theirNonce = Buffer.from(String(m.nonce), 'hex');
        channel.send({ type: 'welcome', mac: masterMac(this.o.token, theirNonce, nonce).toString('hex') });
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
    if (this.fatal !== null) return (refuse(this.fatal, true), null);
    if (j.version !== RDZV_PROTOCOL_VERSION)
      return (
        refuse(
          `${who} speaks rendezvous protocol ${j.version}, node 0 speaks ${RDZV_PROTOCOL_VERSION}: run one medvae version everywhere`,
          true,
        ),
        null
      );
    if (j.nnodes !== this.o.nnodes)
      return (refuse(`${who} was started with --nnodes ${j.nnodes}, node 0 with ${this.o.nnodes}`, true), null);
    if (!Number.isInteger(j.nodeRank) || j.nodeRank < 0 || j.nodeRank >= this.o.nnodes)
      return (refuse(`${who}: node rank outside 0..${this.o.nnodes - 1}`, true), null);
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
      refuse(
        `node rank ${j.nodeRank} is already in the running round (from ${present?.host ?? '?'}): two agents with the same NODE_RANK?`,
        false,
      );
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
        const peers: RankAddress[] = members.flatMap((x) =>
          x.ports!.map((p) => ({ node: x.node, host: x.host, port: p.port, ...(p.socketPath ? { socketPath: p.socketPath } : {}) })),
        );
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
