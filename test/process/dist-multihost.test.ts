// medvae-dist across hosts, over a real network: each node is a network namespace with an address of
// its own, joined to the others by veth pairs on a bridge (scripts/netns.ts), links limited to
// 1 Gbit/s by tbf. The run directory is on this machine's filesystem, which every namespace shares,
// as a cluster's shared volume would be. Needs root and `ip`; without them every test skips, saying why.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/util/tf.ts';
import { writeTinyNpz, smokeFlags } from '../helpers/tiny-data.ts';
import { startProcess, workersOf, type RunningProcess } from '../helpers/dist-process.ts';
import { checkpointWeights, maxAbsDiff } from '../helpers/checkpoint-weights.ts';
import { medvaeInProcess } from '../helpers/medvae-cli.ts';
import { createTestNet, leftovers, netnsSkipReason, sweepStale, type TestNet } from '../../scripts/netns.ts';
import { latestCheckpoint, readState } from '../../src/run/checkpoint.ts';

await tf.setBackend('cpu');
const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'bin', 'medvae-dist.js');
const skip = netnsSkipReason() ?? false;
const dir = mkdtempSync(join(tmpdir(), 'medvae-multihost-'));
const data = join(dir, 'tiny.npz');
writeTinyNpz(data, { train: 48, val: 8, test: 8, size: 16 });
// 16x16 images and two narrow conv layers: what these tests prove does not depend on the model's size,
// and a step costs little next to a process's start.
const MODEL = ['model.image_size=16', 'model.hidden_dims=[4, 8]', 'model.latent_dim=4'];
const tiny = [...smokeFlags(data), ...MODEL.flatMap((s) => ['--set', s])];
const TOKEN = 'multihost-test-token';
let net: TestNet | undefined;
let port = 29_400;
/** Every agent a test started: a failing test must not leave one running. */
const started: RunningProcess[] = [];

before(() => {
  if (skip) return;
  sweepStale();
  net = createTestNet(2, '1gbit');
});

afterEach(async () => {
  for (const p of started.splice(0)) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
    const workers = [...workersOf(p.child.pid!).values()];
    p.child.kill('SIGKILL');
    for (const pid of workers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await p.exit;
  }
});

after(() => {
  net?.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (!skip) assert.deepEqual(leftovers(), [], 'every namespace and link of this run is gone');
});

type Extra = { args?: string[]; token?: string };

/** The agent of one node, inside its namespace. */
function startNode(node: number, args: string[], masterPort: number, extra: Extra = {}): RunningProcess {
  const argv = [
    ...net!.exec(node),
    process.execPath,
    DIST,
    ...tiny,
    ...args,
    '--nnodes',
    '2',
    '--node-rank',
    String(node),
    '--master-addr',
    net!.hosts[0]!.addr,
    '--master-port',
    String(masterPort),
    ...(extra.args ?? []),
  ];
  const p = startProcess(argv, ROOT, { ...process.env, MEDVAE_DIST_TOKEN: extra.token ?? TOKEN });
  started.push(p);
  return p;
}

/** One agent per namespace; each test takes a fresh rendezvous port so a lingering socket cannot interfere. */
function startNodes(args: string[], perNode: (node: number) => Extra = () => ({}), masterPort = port++): RunningProcess[] {
  return net!.hosts.map((_, node) => startNode(node, args, masterPort, perNode(node)));
}

async function exits(nodes: RunningProcess[]): Promise<(number | null)[]> {
  return Promise.all(nodes.map((n) => n.exit));
}

/** Every checkpoint directory is complete: a crash may leave a hidden temporary, never half a step-N. */
function assertCheckpointsWhole(runDir: string): void {
  const ckpts = join(runDir, 'checkpoints');
  if (!existsSync(ckpts)) return;
  for (const name of readdirSync(ckpts).filter((n) => !n.startsWith('.'))) {
    assert.ok(existsSync(join(ckpts, name, 'state.json')), `${name} is a whole checkpoint`);
  }
}

/** True once a process has ended (a zombie waiting for a reaper counts as ended). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function assertNoWorkers(nodes: RunningProcess[]): void {
  for (const n of nodes) assert.equal(workersOf(n.child.pid!).size, 0, 'no worker left behind');
}

const setFlags = (sets: string[]): string[] => sets.flatMap((s) => ['--set', s]);

/** A run of 2 nodes x 2 workers whose node 1 lost its agent (SIGKILL), without --max-restarts. */
interface AgentKilledRun {
  runDir: string;
  nodes: RunningProcess[];
  /** Node 0's exit code, and the time from the kill to it. */
  code: number | null;
  noticedMs: number;
  /** Node 1's workers, each ended a second after its agent (true) or not. */
  orphansGone: boolean[];
}

// Each worker accumulates 2 micro-batches of 2 toward the global batch of 16; a checkpoint every 2 steps.
const TWO_BY_TWO = ['train.batch_size=16', 'train.micro_batch=2', 'output.checkpoint_every_steps=2'];
let agentKilled: Promise<AgentKilledRun> | undefined;
/**
 * One run read by two tests (made once): 2 nodes x 2 workers, many epochs, node 1's agent SIGKILLed at
 * step 4. Its ring and the weights of its last checkpoint are the invariance test's; its end, the
 * agent-killed test's. One run covers what a 2 nodes x 1 worker run would: TCP between the
 * namespaces' addresses, the rendezvous at node 0, and a worker accumulating micro-batches before the
 * all-reduce.
 */
function agentKilledRun(): Promise<AgentKilledRun> {
  agentKilled ??= (async () => {
    const runDir = join(dir, 'two-by-two');
    const nodes = startNodes([...setFlags(TWO_BY_TWO), '--epochs', '50', '--out', runDir, '--cpu-workers', '2', '--rdzv-timeout', '60']);
    await nodes[0]!.waitFor(/epoch 2\/50 step 1\/3/);
    const orphans = [...workersOf(nodes[1]!.child.pid!).values()];
    assert.equal(orphans.length, 2, 'node 1 runs 2 workers');
    nodes[1]!.child.kill('SIGKILL');
    const started = Date.now();
    const code = await nodes[0]!.exit;
    const noticedMs = Date.now() - started;
    await nodes[1]!.exit;
    await new Promise((r) => setTimeout(r, 1000));
    return { runDir, nodes, code, noticedMs, orphansGone: orphans.map(gone) };
  })();
  return agentKilled;
}

test(
  '2 nodes x 2 workers, each accumulating 2 micro-batches, over a 1 Gbit/s link: neighbours on one node over a Unix socket, across nodes over TCP; the last checkpoint holds the same weights as 1 worker accumulating 8 to that step (max abs diff <= 1e-5)',
  { skip, timeout: 180_000 },
  async () => {
    const { runDir, nodes } = await agentKilledRun();
    const out = nodes.map((n) => n.output()).join('\n----\n');
    assert.match(nodes[0]!.output(), /node 0 of 2, rendezvous at 10\.231\.7\.1:\d+/);
    // Ranks 0,1 on node 0 and 2,3 on node 1: 0->1 and 2->3 stay on their host, 1->2 and 3->0 cross
    // over TCP between the namespaces' addresses, not a socket file in the shared /tmp.
    assert.match(nodes[0]!.output(), /rank 1 accepted rank 0 from the unix socket/, out);
    assert.match(nodes[1]!.output(), /rank 3 accepted rank 2 from the unix socket/, out);
    assert.match(nodes[1]!.output(), /rank 2 accepted rank 1 from 10\.231\.7\.1:/, out);
    assert.match(nodes[0]!.output(), /rank 0 accepted rank 3 from 10\.231\.7\.2:/, out);
    const reached = readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step;
    assert.ok(reached >= 2, out);
    // The reference is numbers, not a process: `medvae train` in this process.
    const sets = [...TWO_BY_TWO, `train.max_steps=${reached}`];
    const oneWorker = join(dir, 'one-worker-x8');
    const r1 = await medvaeInProcess(['train', ...tiny, ...setFlags(sets), '--epochs', '50', '--out', oneWorker]);
    assert.equal(r1.status, 0, r1.stderr);
    assert.match(r1.stderr, /1 worker\(s\) x 8 micro-batch\(es\) of <= 2/);
    const diff = maxAbsDiff(checkpointWeights(oneWorker, [...MODEL, ...sets]), checkpointWeights(runDir, [...MODEL, ...sets]));
    assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  },
);

test(
  "node 1 killed mid-run (its agent, SIGKILL) with --max-restarts 1: node 0 stops its workers, and when node 1's agent comes back (as a scheduler restarts it) both re-rendezvous and finish from the last checkpoint",
  { skip, timeout: 180_000 },
  async () => {
    const runDir = join(dir, 'restart');
    const args = [
      '--cpu-workers',
      '1',
      // 3 epochs of tiny steps: the kill (at step 4) lands 5 steps before the run's end, and the ring
      // cannot take a step without node 1.
      '--epochs',
      '3',
      '--set',
      'output.checkpoint_every_steps=2',
      '--max-restarts',
      '1',
      '--out',
      runDir,
      '--rdzv-timeout',
      '60',
    ];
    const masterPort = port++;
    const nodes = startNodes(args, () => ({}), masterPort);
    await nodes[0]!.waitFor(/epoch 2\/3 step 1\/3/);
    nodes[1]!.child.kill('SIGKILL');
    await nodes[0]!.waitFor(/restarting all 1 workers of this node, after a new rendezvous, from .*step-/);
    assertNoWorkers(nodes);
    // The replacement knows nothing of the run: node 0 tells it where to resume.
    const again = startNode(1, args, masterPort);
    const codes = await exits([nodes[0]!, again]);
    assert.deepEqual(codes, [0, 0], `${nodes[0]!.output()}\n----\n${again.output()}`);
    assert.match(nodes[0]!.output(), /stopping round 0: node 1's agent \(10\.231\.7\.2\) went away|no data from rank 1|rank 1 .*closed/);
    assert.match(nodes[0]!.output(), /node 1 \([^)]*\) joined round 1/);
    assert.match(nodes[0]!.output(), /finished at step 9 .* 1 restart\(s\)/);
    assert.match(again.output(), /finished at step 9 .* 0 restart\(s\)/);
    assert.equal(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step, 9);
  },
);

test(
  "node 1's agent killed (SIGKILL) without --max-restarts: node 0 stops within seconds naming node 1, no process left",
  { skip, timeout: 180_000 },
  async () => {
    const { runDir, nodes, code, noticedMs, orphansGone } = await agentKilledRun();
    assert.equal(code, 1, nodes[0]!.output());
    assert.ok(noticedMs < 15_000, `noticed within seconds (${noticedMs} ms)`);
    const last = nodes[0]!.output().trim().split('\n').at(-1)!;
    assert.match(
      last,
      /^error: .*(node 1|rank [23]).*All workers stopped\. Last checkpoint: .*step-\d+ \(intact\); continue with: npx medvae-dist --nnodes 2 --node-rank 0 /,
    );
    assertNoWorkers(nodes);
    assert.deepEqual(orphansGone, [true, true], "node 1's workers ended with their agent");
    assertCheckpointsWhole(runDir);
  },
);

test('a wrong token is refused at the rendezvous, and node 0 names the node that never joined', { skip, timeout: 180_000 }, async () => {
  const nodes = startNodes(['--cpu-workers', '1', '--max-steps', '1', '--out', join(dir, 'token'), '--rdzv-timeout', '6'], (node) =>
    node === 1 ? { token: 'not-the-token' } : {},
  );
  assert.deepEqual(await exits(nodes), [1, 1]);
  assert.match(nodes[1]!.output(), /error: bad token: the join's proof does not match node 0's MEDVAE_DIST_TOKEN/);
  assert.doesNotMatch(nodes[1]!.output(), /not-the-token|multihost-test-token/, 'no token in any message');
  assert.match(nodes[0]!.output(), /error: rendezvous incomplete after 6 s \(--rdzv-timeout\): node\(s\) 1 did not join \(joined: 0\)/);
  assertNoWorkers(nodes);
});

test('a config mismatch is refused, naming the node and the differing keys', { skip, timeout: 180_000 }, async () => {
  const nodes = startNodes(['--cpu-workers', '1', '--max-steps', '1', '--out', join(dir, 'mismatch'), '--rdzv-timeout', '30'], (node) =>
    node === 1 ? { args: ['--set', 'train.lr=0.001'] } : {},
  );
  const codes = await exits(nodes);
  assert.deepEqual(codes, [1, 1], nodes.map((n) => n.output()).join('\n----\n'));
  for (const n of nodes)
    assert.match(
      n.output(),
      /error: node 1 \([^)]*10\.231\.7\.2\) runs another config than node 0: train\.lr \(node 0: 0\.005, node 1: 0\.001\)/,
    );
  assertNoWorkers(nodes);
});

test(
  'a partition (node 1 cut off the bridge) is detected within the step timeout, naming the silent peer; nothing half-written, no process left',
  { skip, timeout: 180_000 },
  async () => {
    const runDir = join(dir, 'partition');
    const nodes = startNodes([
      '--cpu-workers',
      '1',
      '--epochs',
      '50',
      '--set',
      'output.checkpoint_every_steps=2',
      '--step-timeout',
      '10',
      '--out',
      runDir,
      '--rdzv-timeout',
      '5',
    ]);
    await nodes[0]!.waitFor(/epoch 2\/50 step 1\/3/);
    net!.cut(1);
    const started = Date.now();
    const codes = await exits(nodes).finally(() => net!.heal(1));
    const out = nodes.map((n) => n.output()).join('\n----\n');
    assert.deepEqual(codes, [1, 1], out);
    assert.ok(Date.now() - started < 40_000, `stopped within the step timeout and the rendezvous timeout (${Date.now() - started} ms)`);
    const last = (n: RunningProcess): string => n.output().trim().split('\n').at(-1)!;
    assert.match(
      last(nodes[0]!),
      /^error: .*(node 1's agent \(10\.231\.7\.2\) silent for \d+ s|no data from rank 1|rank 1 stopped reading)/,
      out,
    );
    assert.match(
      last(nodes[1]!),
      /^error: .*(rendezvous with node 0 at 10\.231\.7\.1:\d+: silent|no data from rank 0|rank 0 stopped reading)/,
      out,
    );
    assertNoWorkers(nodes);
    assertCheckpointsWhole(runDir);
    assert.ok(readState(latestCheckpoint(join(runDir, 'checkpoints'))!).step >= 2);
  },
);
