// The comlink endpoint over a real forked child's IPC channel.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import * as Comlink from 'comlink';
import { childProcessEndpoint, WorkerExitedError } from '../../src/launch/ipc-endpoint.ts';
import type { IpcTestApi } from '../fixtures/ipc-worker.ts';

const WORKER = new URL('../fixtures/ipc-worker.ts', import.meta.url);
const children: ChildProcess[] = [];

function start(serialization: 'advanced' | 'json' = 'advanced'): {
  child: ChildProcess;
  api: Comlink.Remote<IpcTestApi>;
  exited: Promise<void>;
} {
  const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, api: Comlink.wrap<IpcTestApi>(childProcessEndpoint(child)), exited };
}

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('childProcessEndpoint / parentProcessEndpoint', () => {
  // One worker for the calls that leave it running (a fork through tsx costs about a second of CPU).
  let shared: ReturnType<typeof start>;
  before(() => {
    shared = start();
  });
  after(async () => {
    shared.child.disconnect();
    await shared.exited;
  });

  it('calls methods with typed arrays and nested structures and gets typed results back', async () => {
    const { child, api } = shared;
    assert.equal(await api.pid(), child.pid);
    assert.equal(await api.sum(new Float32Array([0.5, 1.25, -2])), -0.25);
    const out = await api.describe({
      label: 'scan',
      nested: {
        weights: new Float64Array([1.5, -3, 1e-300]),
        counts: new Map([
          ['a', 2],
          ['b', 5],
        ]),
      },
      ids: [new Int32Array([1, 2]), new Int32Array([-7])],
    });
    assert.equal(out.label, 'SCAN');
    assert.ok(out.scaled instanceof Float32Array);
    assert.deepEqual([...out.scaled], [3, -6, 0]); // 2e-300 underflows to 0 in float32
    assert.equal(out.total, 7);
    assert.ok(out.ids[0] instanceof Int32Array);
    assert.deepEqual(
      out.ids.map((a) => [...a]),
      [[2, 3], [-6]],
    );
    assert.deepEqual(out.kinds, ['Float64Array', 'Map', 'Int32Array']);
  });

  it('rejects with the error the worker threw, keeping its name and message', async () => {
    const { api } = shared;
    await assert.rejects(api.fail('lr must be positive'), (e: Error) => e.name === 'RangeError' && e.message === 'lr must be positive');
    assert.equal(await api.sum(new Float32Array([1, 2])), 3, 'the channel keeps working after a thrown error');
  });

  it('also works over the default JSON channel, where a call in flight when the worker exits during it rejects, and calls made afterwards', async () => {
    const { child, api, exited } = start('json');
    assert.equal(await api.sum(new Float32Array([4, 5])), 9);
    assert.equal(await api.pid(), child.pid);
    await assert.rejects(
      api.crash(3),
      (e: Error) => e.name === 'WorkerExitedError' && e.message.includes(`worker pid ${child.pid}`) && e.message.includes('code 3'),
    );
    await exited;
    await assert.rejects(api.pid(), (e: Error) => e.name === 'WorkerExitedError');
  });

  it('rejects pending calls when the worker is killed instead of hanging', async () => {
    const { child, api, exited } = start();
    await api.pid();
    const pending = [api.hang(), api.hang()];
    setTimeout(() => child.kill('SIGKILL'), 50);
    const started = Date.now();
    for (const call of pending) {
      await assert.rejects(call, (e: Error) => e.name === new WorkerExitedError('').name && e.message.includes('SIGKILL'));
    }
    assert.ok(Date.now() - started < 5000);
    await exited;
  });
});
