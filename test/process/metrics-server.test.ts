// The /metrics endpoint: routing, failures of collect, and clients that must not hold it up.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { MetricsServerError, serveMetrics, startMetricsServer } from '../../src/metrics/server.ts';
import type { MetricsServer } from '../../src/metrics/server.ts';
import { TrainingMetrics } from '../../src/metrics/registry.ts';
import { freePort } from '../helpers/prometheus.ts';

const EXPOSITION = '# HELP x_total test\n# TYPE x_total counter\nx_total 1\n';

/** Resolves when the server closes the socket, with what it sent before. */
function closedBy(socket: Socket): Promise<string> {
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  return new Promise((resolve) => socket.on('close', () => resolve(received)));
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

describe('startMetricsServer', () => {
  const servers: MetricsServer[] = [];
  const logs: string[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));
  const start = async (collect: () => Promise<string>, socketTimeoutMs?: number): Promise<string> => {
    const server = await startMetricsServer({
      port: 0,
      collect,
      log: (message) => logs.push(message),
      collectTimeoutMs: 300,
      socketTimeoutMs,
    });
    servers.push(server);
    assert.ok(server.port > 0);
    return `http://127.0.0.1:${server.port}`;
  };

  it('serves GET and HEAD /metrics only', async () => {
    const base = await start(async () => EXPOSITION);
    const get = await fetch(`${base}/metrics?ignored=1`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-type'), Registry.PROMETHEUS_CONTENT_TYPE);
    assert.equal(await get.text(), EXPOSITION);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/metrics/extra`)).status, 404);
  });

  it('answers 500 when collect fails and 503 when it hangs, and says so in the log', async () => {
    const failing = await start(async () => {
      throw new Error('registry exploded');
    });
    const failed = await fetch(`${failing}/metrics`);
    assert.equal(failed.status, 500);
    assert.match(await failed.text(), /registry exploded/);
    const hanging = await start(() => new Promise<string>(() => {}));
    const began = Date.now();
    const timedOut = await fetch(`${hanging}/metrics`);
    assert.equal(timedOut.status, 503);
    assert.ok(Date.now() - began < 2000);
    assert.ok(logs.some((line) => /registry exploded/.test(line)));
    assert.ok(logs.some((line) => /took over 300 ms/.test(line)));
  });

  it('scrapes promptly while a silent client and a garbage client are connected, and drops both', { timeout: 15000 }, async () => {
    const base = await start(async () => EXPOSITION, 2000);
    const port = Number(new URL(base).port);
    const silent = await openSocket(port);
    const silentClosed = closedBy(silent);
    const garbage = await openSocket(port);
    const garbageClosed = closedBy(garbage);
    garbage.write('\x00\x01 definitely not HTTP\r\n\r\n');
    // A client that sends half a request line and stalls.
    const stalled = await openSocket(port);
    const stalledClosed = closedBy(stalled);
    stalled.write('GET /metr');

    const began = Date.now();
    const response = await fetch(`${base}/metrics`);
    assert.equal(await response.text(), EXPOSITION);
    // Served while the silent and stalled clients still hold their connections, not after them.
    assert.ok(Date.now() - began < 1500, `scrape took ${Date.now() - began} ms`);
    assert.ok(!silent.destroyed && !stalled.destroyed);

    assert.match(await garbageClosed, /^HTTP\/1\.1 400/);
    const dropped = Date.now();
    const [silentGot, stalledGot] = await Promise.all([silentClosed, stalledClosed]);
    // Whichever deadline comes first: the idle timeout closes silently, the headers deadline answers 408.
    for (const got of [silentGot, stalledGot]) assert.ok(got === '' || got.startsWith('HTTP/1.1 408 '), got);
    // Closed by the server's 2 s socket timeout (deadlines checked every second), not by the test.
    assert.ok(Date.now() - dropped < 5000, `idle sockets closed after ${Date.now() - dropped} ms`);
  });
});

describe('serveMetrics', () => {
  it('is off for port 0 and serves a TrainingMetrics otherwise', async () => {
    const metrics = new TrainingMetrics({ defaultMetrics: false });
    assert.equal(await serveMetrics(0, '127.0.0.1', metrics), undefined);
    const port = await freePort();
    const server = await serveMetrics(port, '127.0.0.1', metrics);
    assert.ok(server !== undefined);
    try {
      assert.equal(server.port, port);
      metrics.stepDone({ step: 1, images: 4, stepSeconds: 0.1, dataWaitSeconds: 0, losses: {}, learningRates: {} });
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(text, /^medvae_train_steps_total 1$/m);
      // The port is taken now: a second server says which port and what to do.
      await assert.rejects(
        serveMetrics(port, '127.0.0.1', metrics),
        (error: Error) =>
          error instanceof MetricsServerError && error.message.includes(`127.0.0.1:${port}`) && /EADDRINUSE/.test(error.message),
      );
    } finally {
      await server.close();
    }
    await assert.rejects(startMetricsServer({ port: 70000, collect: async () => '' }), /port must be an integer in 0\.\.65535, got 70000/);
  });
});
