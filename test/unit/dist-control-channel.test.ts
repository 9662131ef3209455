// The agents' control connection: how it says that its peer is gone.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { ControlChannel } from '../../src/launch/control-channel.ts';

const sockets: Socket[] = [];
after(() => sockets.forEach((s) => s.destroy()));

/** A connected pair on loopback, the channel's socket and the peer's (destroyed after the tests, whatever happens). */
async function pair(): Promise<{ ours: Socket; peer: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const ours = connect(port, '127.0.0.1');
  await once(ours, 'connect');
  const [peer] = await accepted;
  server.close();
  sockets.push(ours, peer);
  return { ours, peer };
}

test('a peer that closes and a peer that resets the connection (killed with bytes unread) are both "connection closed"', async () => {
  const closing = await pair();
  const a = new ControlChannel(closing.ours, 10_000);
  closing.peer.end();
  assert.equal(await a.closedBy, 'connection closed');

  const resetting = await pair();
  const b = new ControlChannel(resetting.ours, 10_000);
  resetting.peer.resetAndDestroy();
  assert.equal(await b.closedBy, 'connection closed');
});

test('a peer that sends something other than JSON lines is named for it', async () => {
  const p = await pair();
  const c = new ControlChannel(p.ours, 10_000);
  p.peer.write('GET / HTTP/1.1\n');
  assert.equal(await c.closedBy, 'sent a line that is not JSON (not a medvae agent?)');
});
