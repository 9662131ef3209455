// The multi-host control plane without processes or namespaces: where a node stands (flags, torchrun's
// variables, Kubernetes, Slurm) and node 0's rendezvous, in process on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { expandHostlist, resolveNodeLayout } from '../../src/launch/scheduler-env.ts';
import { differingKeys, flattenSettings } from '../../src/launch/rendezvous-protocol.ts';
import { RendezvousServer } from '../../src/launch/rendezvous-server.ts';
import { RendezvousSession, type JoinOptions } from '../../src/launch/rendezvous-client.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('Slurm host lists expand as scontrol show hostnames does', () => {
  assert.deepEqual(expandHostlist('node[01-03,7],gpu-a[1-2]'), ['node01', 'node02', 'node03', 'node7', 'gpu-a1', 'gpu-a2']);
  assert.deepEqual(expandHostlist('login1'), ['login1']);
  assert.deepEqual(expandHostlist('r[1-2]n[09-10]'), ['r1n09', 'r1n10', 'r2n09', 'r2n10']);
  assert.deepEqual(expandHostlist('a[8-10]'), ['a8', 'a9', 'a10']);
  assert.throws(() => expandHostlist('node[1-3'), /SLURM_JOB_NODELIST 'node\[1-3': a '\[' without its '\]'/);
  assert.throws(() => expandHostlist('node[3-1]'), /range 3-1 runs backwards/);
  assert.throws(() => expandHostlist('node[a]'), /'a' is not a number or a range a-b/);
});

test('the node layout: defaults, torchrun variables, flags over them (with one line saying so)', () => {
  assert.deepEqual(resolveNodeLayout({}, {}), {
    nnodes: 1,
    nodeRank: 0,
    masterAddr: '127.0.0.1',
    masterPort: 29500,
    scheduler: null,
    notes: [],
  });
  const env = { NNODES: '3', NODE_RANK: '2', MASTER_ADDR: 'head', MASTER_PORT: '1234' };
  assert.deepEqual(resolveNodeLayout({}, env), {
    nnodes: 3,
    nodeRank: 2,
    masterAddr: 'head',
    masterPort: 1234,
    scheduler: null,
    notes: [],
  });
  const layout = resolveNodeLayout({ nodeRank: '1', masterPort: '1234' }, env);
  assert.equal(layout.nodeRank, 1);
  assert.deepEqual(layout.notes, ['--node-rank 1 overrides NODE_RANK=2']);
  assert.throws(() => resolveNodeLayout({ nnodes: '2', nodeRank: '2' }, {}), /--node-rank=2 is not below the node count 2 \(--nnodes\)/);
  assert.throws(() => resolveNodeLayout({}, { NNODES: 'two' }), /NNODES must be an integer in 1\.\.255, got 'two'/);
  assert.throws(() => resolveNodeLayout({ masterPort: '70000' }, {}), /--master-port must be an integer in 1\.\.65535, got '70000'/);
});

test('a Kubernetes Indexed Job: the completion index is the node rank, pod 0 behind the headless Service is node 0', () => {
  const env = { JOB_COMPLETION_INDEX: '1', HOSTNAME: 'medvae-train-1', NNODES: '2', MEDVAE_K8S_SERVICE: 'medvae-nodes' };
  const layout = resolveNodeLayout({}, env);
  assert.deepEqual(layout, {
    nnodes: 2,
    nodeRank: 1,
    masterAddr: 'medvae-train-0.medvae-nodes',
    masterPort: 29500,
    scheduler: 'kubernetes',
    notes: [],
  });
  assert.equal(resolveNodeLayout({}, { ...env, MEDVAE_K8S_SERVICE: undefined }).masterAddr, 'medvae-train-0.medvae-train');
  assert.throws(
    () => resolveNodeLayout({}, { ...env, NODE_RANK: '0' }),
    /NODE_RANK=0 but JOB_COMPLETION_INDEX=1: the environment disagrees on --node-rank; unset one or pass --node-rank/,
  );
});

test('Slurm: node id, node count and the first host of the job', () => {
  const env = {
    SLURM_JOB_ID: '42',
    SLURM_NODEID: '2',
    SLURM_PROCID: '2',
    SLURM_NNODES: '4',
    SLURM_JOB_NODELIST: 'gpu[07-10]',
    MASTER_PORT: '29600',
  };
  assert.deepEqual(resolveNodeLayout({}, env), {
    nnodes: 4,
    nodeRank: 2,
    masterAddr: 'gpu07',
    masterPort: 29600,
    scheduler: 'slurm',
    notes: [],
  });
  assert.throws(
    () => resolveNodeLayout({}, { ...env, SLURM_PROCID: '5' }),
    /SLURM_PROCID=5 but SLURM_NODEID=2: start one medvae-dist per node \(srun --ntasks-per-node=1\)/,
  );
  assert.throws(() => resolveNodeLayout({}, { ...env, NNODES: '2' }), /NNODES=2 but SLURM_NNODES=4/);
  assert.equal(resolveNodeLayout({ nnodes: '2', nodeRank: '1' }, env).notes.length, 2);
});

test('settings are compared key by key', () => {
  const a = flattenSettings({ train: { lr: 0.005, batch_size: 8 }, data: { path: '/d' } });
  assert.deepEqual(a, { 'train.lr': '0.005', 'train.batch_size': '8', 'data.path': '"/d"' });
  const b = flattenSettings({ train: { lr: 0.001, batch_size: 8 }, model: { name: 'vae' } });
  assert.deepEqual(differingKeys(a, b, 0, 3), [
    'data.path (node 0: "/d", node 3: unset)',
    'model.name (node 0: unset, node 3: "vae")',
    'train.lr (node 0: 0.005, node 3: 0.001)',
  ]);
});

let nextPort = 29_700 + (process.pid % 200);

async function withServer(
  nnodes: number,
  rdzvTimeoutMs: number,
  body: (join: (node: number, o?: Partial<JoinOptions>) => Promise<RendezvousSession>, runDir: string) => Promise<void>,
): Promise<string[]> {
  const runDir = tempDir('medvae-rdzv-');
  const port = nextPort++;
  const settings = { 'train.lr': '0.005' };
  const log: string[] = [];
  const server = await RendezvousServer.start({
    bindHost: '127.0.0.1',
    masterAddr: '127.0.0.1',
    port,
    token: 't',
    nnodes,
    runDir,
    reference: { settings },
    rdzvTimeoutMs,
    liveTimeoutMs: 2000,
    log: (l) => log.push(l),
    resume: () => null,
  });
  const joinAs = (node: number, o: Partial<JoinOptions> = {}): Promise<RendezvousSession> =>
    RendezvousSession.join({
      masterAddr: '127.0.0.1',
      masterPort: port,
      token: 't',
      runDir,
      rdzvTimeoutMs,
      liveTimeoutMs: 2000,
      log: () => undefined,
      request: { nodeRank: node, nnodes, localWorldSize: 2, hostname: `host${node}`, settings },
      ...o,
    });
  try {
    await body(joinAs, runDir);
  } finally {
    await server.close(0);
  }
  assert.deepEqual(readdirSync(runDir), [], 'the probe file is removed');
  return log;
}

test('the rendezvous assigns node-major ranks and hands every node the peers, Unix sockets included', async () => {
  await withServer(2, 10_000, async (joinAs) => {
    const [a, b] = await Promise.all([joinAs(0), joinAs(1)]);
    assert.deepEqual([a.assignment.rankOffset, b.assignment.rankOffset, a.assignment.worldSize], [0, 2, 4]);
    const [pa, pb] = await Promise.all([
      a.exchangePorts([
        { port: 1000, socketPath: '/tmp/s0' },
        { port: 1001, socketPath: null },
      ]),
      b.exchangePorts([
        { port: 2000, socketPath: null },
        { port: 2001, socketPath: null },
      ]),
    ]);
    assert.deepEqual(pa, pb);
    assert.deepEqual(
      pa.map((p) => [p.node, p.port, p.socketPath]),
      [
        [0, 1000, '/tmp/s0'],
        [0, 1001, undefined],
        [1, 2000, undefined],
        [1, 2001, undefined],
      ],
    );
    // One node fails: the other is told why.
    a.fail('worker rank 1 died');
    assert.match(await b.stopped, /^stopped by node 0: node 0 \(127\.0\.0\.1\): worker rank 1 died$/);
  });
});

test('a node missing after --rdzv-timeout is named, on node 0 and on the nodes that joined', async () => {
  const log = await withServer(3, 800, async (joinAs) => {
    await assert.rejects(joinAs(0), /rendezvous incomplete after 0\.8 s \(--rdzv-timeout\): node\(s\) 1, 2 did not join \(joined: 0\)/);
  });
  assert.match(log.join('\n'), /node\(s\) 1, 2 did not join/);
});

test('a node that cannot see the run directory is refused at the rendezvous', async () => {
  await withServer(2, 10_000, async (joinAs) => {
    const elsewhere = tempDir('medvae-rdzv-other-');
    const zero = assert.rejects(joinAs(0), /cannot see the run directory/);
    await assert.rejects(
      joinAs(1, { runDir: elsewhere }),
      /node 1 \(host1, 127\.0\.0\.1\) cannot see the run directory .* that node 0 writes \(its probe file \.medvae-rdzv-[0-9a-f]+ is missing there\): mount the same shared volume at the same path on every node/,
    );
    await zero;
  });
});

test('nobody at the master address: the joining node names the address and the variables to check', async () => {
  await assert.rejects(
    RendezvousSession.join({
      masterAddr: '127.0.0.1',
      masterPort: 1,
      token: 't',
      runDir: tmpdir(),
      rdzvTimeoutMs: 300,
      liveTimeoutMs: 1000,
      log: () => undefined,
      request: { nodeRank: 1, nnodes: 2, localWorldSize: 1, hostname: 'h', settings: {} },
    }),
    /node 1 could not reach node 0's rendezvous at 127\.0\.0\.1:1 within 0\.3 s \(--rdzv-timeout\): is node 0's agent running, and are --master-addr\/--master-port \(MASTER_ADDR\/MASTER_PORT\) right\?/,
  );
});

test('Ctrl-C or SIGTERM while waiting for the other nodes ends the wait at once', async () => {
  await withServer(2, 10_000, async (joinAs) => {
    const stop = new AbortController();
    const started = Date.now();
    setTimeout(() => stop.abort(), 200);
    await assert.rejects(
      joinAs(0, { signal: stop.signal }),
      /^RendezvousError: interrupted while waiting for the other nodes at the rendezvous/,
    );
    assert.ok(Date.now() - started < 2000);
  });
});
