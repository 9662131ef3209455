// The ring's shared secret never crosses the wire: ranks prove they hold MEDVAE_DIST_TOKEN by
// HMAC-SHA256 of fresh nonces, both ways. Traffic is captured by a TCP proxy between real ranks.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { PeerError } from '../../src/collective/errors.ts';
import { type Collective, listenForRing } from '../../src/collective/ring.ts';
import { acceptHandshake, SMALL } from '../helpers/ring-handshake.ts';
import { recordingProxy } from '../helpers/recording-proxy.ts';

const TOKEN = 'medvae-test-secret-7f3a9c';

describe('ring authentication', () => {
  it('a ring forms and reduces through a recording proxy, and the token bytes never appear in the traffic', async () => {
    const listeners = await Promise.all(
      [0, 1].map((rank) => listenForRing({ rank, worldSize: 2, token: TOKEN, transport: 'tcp', ...SMALL, log: () => undefined })),
    );
    const proxies = await Promise.all(listeners.map((l) => recordingProxy(l.port)));
    const peers = proxies.map((p) => ({ host: '127.0.0.1', port: p.port }));
    const ring: Collective[] = await Promise.all(listeners.map((l) => l.connect(peers)));
    const buffers = ring.map((c) => [Float32Array.from({ length: 3000 }, (_, i) => i * (c.rank + 1))]);
    await Promise.all(ring.map((c, r) => c.allReduceMean(buffers[r]!)));
    assert.equal(buffers[0]![0]![10], 15);
    await Promise.all(ring.map((c) => c.close()));
    for (const p of proxies) p.close();

    const traffic = Buffer.concat(proxies.flatMap((p) => p.captured.flat()));
    assert.ok(traffic.length > 2 * 3000 * 4, `captured ${traffic.length} bytes`);
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(0x5244564d);
    assert.ok(traffic.includes(magic), 'the handshake went through the proxy');
    for (const form of [Buffer.from(TOKEN, 'utf8'), Buffer.from(TOKEN, 'utf16le'), Buffer.from(TOKEN).subarray(0, 8)]) {
      assert.equal(traffic.indexOf(form), -1, `token bytes (${form.length}) on the wire`);
    }
  });

  it('a replayed transcript of a genuine dialler is refused: the challenge is fresh every time', async () => {
    const logs: string[] = [];
    const listeners = await Promise.all(
      [0, 1].map((rank) =>
        listenForRing({
          rank,
          worldSize: 2,
          token: TOKEN,
          transport: 'tcp',
          ...SMALL,
          log: (l) => {
            if (rank === 1) logs.push(l);
          },
        }),
      ),
    );
    const proxy = await recordingProxy(listeners[1]!.port);
    const peers = [
      { host: '127.0.0.1', port: listeners[0]!.port },
      { host: '127.0.0.1', port: proxy.port },
    ];
    const ring = await Promise.all(listeners.map((l) => l.connect(peers)));
    await Promise.all(ring.map((c) => c.close()));
    proxy.close();
    // What rank 0 sent rank 1 up to and including its proof: header + hello, header + proof.
    const sent = Buffer.concat(proxy.captured[0]!).subarray(0, 20 + 56 + 20 + 40);

    const fresh = await listenForRing({ rank: 1, worldSize: 2, token: TOKEN, transport: 'tcp', ...SMALL, log: (l) => logs.push(l) });
    await new Promise<void>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: fresh.port }, () => socket.write(sent));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
      socket.resume();
    });
    await fresh.close();
    assert.ok(
      logs.some((l) =>
        /refused a connection from .*: bad token \(claimed rank 0\): its proof does not match this rank's MEDVAE_DIST_TOKEN/.test(l),
      ),
      logs.join('\n'),
    );
  });

  it('a dialler refuses an acceptor that cannot prove the token, naming it', async () => {
    const impostor = net.createServer((socket) => {
      acceptHandshake(socket, { rank: 1, worldSize: 2 }, 'a guess', () => undefined);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const rank0 = await listenForRing({
      rank: 0,
      worldSize: 2,
      token: TOKEN,
      transport: 'tcp',
      ...SMALL,
      timeoutMs: 5000,
      log: () => undefined,
    });
    const peers = [
      { host: '127.0.0.1', port: rank0.port },
      { host: '127.0.0.1', port: (impostor.address() as net.AddressInfo).port },
    ];
    await assert.rejects(
      rank0.connect(peers),
      (e: Error) => e instanceof PeerError && e.rank === 1 && /does not prove it holds this rank's MEDVAE_DIST_TOKEN/.test(e.message),
    );
    await rank0.close();
    impostor.close();
  });
});
