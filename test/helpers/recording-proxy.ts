// A TCP proxy that records every byte both ways: what an eavesdropper between two ranks would see.
import net from 'node:net';

/** A TCP proxy to `port` that records every byte both ways, per connection and direction. */
export async function recordingProxy(port: number): Promise<{ port: number; captured: Buffer[][]; close(): void }> {
  const captured: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up: Buffer[] = [];
    const down: Buffer[] = [];
    captured.push(up, down);
    const target = net.connect({ host: '127.0.0.1', port });
    for (const s of [client, target]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    client.on('data', (d: Buffer) => {
      up.push(Buffer.from(d));
      target.write(d);
    });
    target.on('data', (d: Buffer) => {
      down.push(Buffer.from(d));
      client.write(d);
    });
    client.on('close', () => target.destroy());
    target.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    captured,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
