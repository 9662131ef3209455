// A small network of test hosts on this machine: network namespaces joined by veth pairs on a bridge,
// with private addresses that exist only inside those namespaces (no route leads anywhere else). Names
// carry this process's id, so a sweep can remove what a killed test run left behind. Needs root and `ip`.
import { execFileSync, spawnSync } from 'node:child_process';

const PREFIX = 'mvt';
/** Private, and only ever configured inside the namespaces made here. */
const SUBNET = '10.231.7';
let made = 0;

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why the namespace tests cannot run here, or null when they can. */
export function netnsSkipReason(): string | null {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root (ip netns add)';
  if (spawnSync('ip', ['-V']).status !== 0) return "needs iproute2's `ip`";
  const probe = `${PREFIX}-probe-${process.pid.toString(36)}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

/** Removes namespaces and bridges of test runs whose process is gone. */
export function sweepStale(): void {
  for (const line of ip(['netns', 'list']).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(?:probe-)?([0-9a-z]+)`).exec(name);
    if (m && !alive(parseInt(m[1]!, 36))) spawnSync('ip', ['netns', 'del', name]);
  }
  for (const line of ip(['-o', 'link', 'show', 'type', 'bridge']).split('\n')) {
    const m = new RegExp(`^\\d+: (${PREFIX}([0-9a-z]+)x\\d+)[:@]`).exec(line);
    if (m && !alive(parseInt(m[2]!, 36))) spawnSync('ip', ['link', 'del', m[1]!]);
  }
}

export interface TestHost {
  ns: string;
  addr: string;
  /** The bridge side of this host's veth pair: set it down to cut the host off. */
  link: string;
}

export interface TestNet {
  hosts: TestHost[];
  /** argv prefix that runs a command inside host i. */
  exec(i: number): string[];
  /** Cuts host i off the network (its link down): a partition. */
  cut(i: number): void;
  /** Connects host i again. */
  heal(i: number): void;
  destroy(): void;
}

/** Builds n hosts on one bridge; every link limited by tbf to `rate` (e.g. '1gbit') when given. */
export function createTestNet(n: number, rate?: string): TestNet {
  const id = `${process.pid.toString(36)}x${made++}`;
  const bridge = `${PREFIX}${id}`;
  const hosts: TestHost[] = [];
  const net: TestNet = {
    hosts,
    exec: (i) => ['ip', 'netns', 'exec', hosts[i]!.ns],
    cut: (i) => void ip(['link', 'set', hosts[i]!.link, 'down']),
    heal: (i) => void ip(['link', 'set', hosts[i]!.link, 'up']),
    destroy: () => {
      for (const h of hosts) spawnSync('ip', ['netns', 'del', h.ns]);
      spawnSync('ip', ['link', 'del', bridge]);
      for (const h of hosts) spawnSync('ip', ['link', 'del', h.link]);
    },
  };
  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['link', 'set', bridge, 'up']);
    for (let i = 0; i < n; i++) {
      const h: TestHost = { ns: `${PREFIX}-${id}-${i}`, addr: `${SUBNET}.${i + 1}`, link: `${bridge}h${i}` };
      hosts.push(h);
      const inner = `${bridge}n${i}`;
      ip(['netns', 'add', h.ns]);
      ip(['link', 'add', h.link, 'type', 'veth', 'peer', 'name', inner]);
      ip(['link', 'set', h.link, 'master', bridge, 'up']);
      ip(['link', 'set', inner, 'netns', h.ns]);
      ip(['-n', h.ns, 'link', 'set', inner, 'name', 'eth0']);
      ip(['-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0']);
      ip(['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      if (rate) {
        // Both directions: the bridge side shapes what enters the host, eth0 what leaves it.
        const tbf = ['root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms'];
        execFileSync('tc', ['qdisc', 'add', 'dev', h.link, ...tbf]);
        execFileSync('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', ...tbf]);
      }
    }
  } catch (e) {
    net.destroy();
    throw e;
  }
  return net;
}

/** True when something named after this process is still there (for the clean-up check). */
export function leftovers(): string[] {
  const mine = new RegExp(`${PREFIX}-?${process.pid.toString(36)}x`);
  return [...ip(['netns', 'list']).split('\n'), ...ip(['-o', 'link', 'show']).split('\n')].filter((l) => mine.test(l));
}
