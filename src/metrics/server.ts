// The HTTP endpoint Prometheus scrapes: GET (or HEAD) /metrics, nothing else.
//
// It shares the event loop with training, so it must never hold it: every socket has an idle
// timeout and a deadline for its headers, garbage requests are answered 400 and closed by Node's
// parser, and a collect that does not finish in time is answered 503 instead of piling up.
// The server is unref'd: it never keeps a finished process alive.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Registry } from 'prom-client';
import type { MetricsSource } from './registry.ts';

export class MetricsServerError extends Error {
  override name = 'MetricsServerError';
}

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (tests). The CLI's "0 = off" lives in serveMetrics. */
  port: number;
  /** Interface to listen on (default 127.0.0.1: only this host; use 0.0.0.0 for a remote Prometheus). */
  host?: string;
  /** Renders the exposition text; called once per scrape. */
  collect: () => Promise<string>;
  /** Content-Type of the text (default Prometheus text format 0.0.4). */
  contentType?: string;
  /** Where to report failed scrapes (default: nowhere). */
  log?: (message: string) => void;
  /** A scrape whose collect takes longer is answered 503 (default 5000 ms). */
  collectTimeoutMs?: number;
  /** Idle sockets and requests whose headers have not arrived by then are closed (default 10000 ms). */
  socketTimeoutMs?: number;
}

export interface MetricsServer {
  /** The port listened on (the chosen one when 0 was asked). */
  readonly port: number;
  readonly host: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

class CollectTimeout extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CollectTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function pathOf(url: string | undefined): string | undefined {
  try {
    return new URL(url ?? '', 'http://metrics.invalid').pathname;
  } catch {
    return undefined;
  }
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const {
    port,
    host = '127.0.0.1',
    collect,
    contentType = Registry.PROMETHEUS_CONTENT_TYPE,
    log = () => {},
    collectTimeoutMs = 5000,
    socketTimeoutMs = 10000,
  } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MetricsServerError(`metrics server: port must be an integer in 0..65535, got ${port}`);
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (pathOf(req.url) !== '/metrics') return reply(res, 404, 'not found: only /metrics is served\n');
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Type': contentType });
      res.end();
      return;
    }
    if (req.method !== 'GET') return reply(res, 405, 'method not allowed: use GET\n', { Allow: 'GET, HEAD' });
    try {
      const text = await withTimeout(collect(), collectTimeoutMs);
      reply(res, 200, text, { 'Content-Type': contentType });
    } catch (error) {
      const timedOut = error instanceof CollectTimeout;
      const message = timedOut ? `collecting metrics took over ${collectTimeoutMs} ms` : String(error);
      log(`metrics server: scrape failed: ${message}`);
      if (!res.headersSent) reply(res, timedOut ? 503 : 500, `${message}\n`);
    }
  };

  const server = createServer(
    {
      headersTimeout: socketTimeoutMs,
      requestTimeout: socketTimeoutMs,
      // How often Node enforces the two deadlines above (default 30 s, far too coarse here).
      connectionsCheckingInterval: Math.min(1000, socketTimeoutMs),
      keepAliveTimeout: Math.min(5000, socketTimeoutMs),
    },
    (req, res) => void handle(req, res),
  );
  // A socket idle this long (e.g. a client that connects and sends nothing) is destroyed.
  server.setTimeout(socketTimeoutMs);
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        new MetricsServerError(
          `metrics server: cannot listen on ${host}:${port} (${error.code ?? error.message}); pick another --metrics-port or 0 to turn metrics off`,
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => log(`metrics server: ${error.message}`));
  server.unref();

  const address = server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  return {
    port: boundPort,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * What the CLI calls with --metrics-port / --metrics-host (output.metrics_port / metrics_host):
 * port 0 means metrics are off and returns undefined; otherwise serves `source` on that port.
 */
export async function serveMetrics(
  port: number,
  host: string,
  source: MetricsSource,
  log?: (message: string) => void,
): Promise<MetricsServer | undefined> {
  if (port === 0) return undefined;
  return startMetricsServer({ port, host, collect: () => source.metrics(), contentType: source.contentType, log });
}
