// The ring's TCP links encrypted with TLS 1.3 keyed by the shared token (MEDVAE_DIST_TLS=1): a real
// ring reduces correctly through a recording proxy that sees neither gradient bytes nor frame
// headers, and a rank with another token fails the TLS handshake with a logged reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DistConfigError, PeerError } from '../../src/collective/errors.ts';
import { listenForRing } from '../../src/collective/ring.ts';
import { SMALL } from '../helpers/ring-handshake.ts';
import { recordingProxy } from '../helpers/recording-proxy.ts';

describe('ring over TLS', () => {
  it('reduces correctly, and the wire carries neither the gradients nor the handshake in the clear', async () => {
    const listeners = await Promise.all(
      [0, 1].map((rank) =>
        listenForRing({ rank, worldSize: 2, token: 'tls-test', tls: true, transport: 'tcp', ...SMALL, log: () => undefined }),
      ),
    );
    const proxies = await Promise.all(listeners.map((l) => recordingProxy(l.port)));
    const ring = await Promise.all(listeners.map((l) => l.connect(proxies.map((p) => ({ host: '127.0.0.1', port: p.port })))));
    const buffers = ring.map((c) => [Float32Array.from({ length: 5000 }, (_, i) => (c.rank + 1) * (i % 251) + 0.25)]);
    const sent = Buffer.from(buffers[1]![0]!.buffer.slice(0, 64));
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r]!)));
    assert.equal(buffers[0]![0]![10], 1.5 * 10 + 0.25);
    assert.deepEqual(buffers[0]![0], buffers[1]![0]);
    await Promise.all(ring.map((c) => c.close()));
    for (const p of proxies) p.close();
    const traffic = Buffer.concat(proxies.flatMap((p) => p.captured.flat()));
    assert.ok(traffic.length > 5000 * 4, `captured ${traffic.length} bytes`);
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(0x5244564d);
    assert.equal(traffic.indexOf(magic), -1, 'no handshake frame in the clear');
    assert.equal(traffic.indexOf(sent), -1, 'no gradient bytes in the clear');
  });

  it('a rank with another token fails the TLS handshake: refused with a logged reason, the dialler names the rank', async () => {
    const logs: string[] = [];
    const listeners = await Promise.all(
      ['alpha', 'beta'].map((token, rank) =>
        listenForRing({ rank, worldSize: 2, token, tls: true, transport: 'tcp', ...SMALL, timeoutMs: 4000, log: (l) => logs.push(l) }),
      ),
    );
    const peers = listeners.map((l) => ({ host: '127.0.0.1', port: l.port }));
    const outcomes = await Promise.allSettled(listeners.map((l) => l.connect(peers)));
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok((outcome as PromiseRejectedResult).reason instanceof PeerError);
    }
    assert.ok(
      logs.some((l) => /refused a connection from .*TLS handshake failed/.test(l)),
      logs.join('\n'),
    );
  });

  it('TLS without a token is refused before listening', async () => {
    const saved = process.env.MEDVAE_DIST_TOKEN;
    delete process.env.MEDVAE_DIST_TOKEN;
    try {
      await assert.rejects(
        listenForRing({ rank: 0, worldSize: 2, tls: true }),
        (e: Error) => e instanceof DistConfigError && /TLS on the ring needs a shared token/.test(e.message),
      );
    } finally {
      if (saved !== undefined) process.env.MEDVAE_DIST_TOKEN = saved;
    }
  });
});
