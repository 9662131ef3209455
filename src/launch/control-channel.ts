// The agents' control connection (node 0's rendezvous and every other node's agent): one JSON message
// a line over TCP, with heartbeats both ways so that a silent peer (a stopped host, a partition) is
// noticed even though TCP itself would wait for minutes. Gradient bytes never travel here.
import type { Socket } from 'node:net';

/** Bigger lines than this are refused: the messages carry a config and a peer list, nothing large. */
const MAX_LINE_BYTES = 1 << 20;
export const HEARTBEAT_MS = 1000;

export type Message = { type: string } & Record<string, unknown>;

export class ControlChannel {
  private buffered = '';
  private lastHeard = Date.now();
  private readonly beat: NodeJS.Timeout;
  private closed = false;
  /** Resolves with why the channel closed (the peer closed, went silent, or sent garbage). */
  readonly closedBy: Promise<string>;
  private resolveClosed!: (why: string) => void;
  private onMessage: (m: Message) => void = () => undefined;

  constructor(
    readonly socket: Socket,
    liveTimeoutMs: number,
  ) {
    this.closedBy = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.read(chunk));
    // A peer killed with bytes unread in its socket resets the connection instead of closing it:
    // the same event as a close, and said the same way.
    socket.on('error', (e: NodeJS.ErrnoException) =>
      this.close(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'connection closed' : `connection error: ${e.message}`),
    );
    socket.on('close', () => this.close('connection closed'));
    this.beat = setInterval(
      () => {
        const silent = Date.now() - this.lastHeard;
        if (silent > liveTimeoutMs) return this.close(`silent for ${Math.round(silent / 1000)} s (no heartbeat)`);
        this.send({ type: 'beat' });
      },
      Math.min(HEARTBEAT_MS, liveTimeoutMs / 2),
    );
  }

  listen(onMessage: (m: Message) => void): void {
    this.onMessage = onMessage;
  }

  send(m: Message): void {
    if (!this.closed && this.socket.writable) this.socket.write(`${JSON.stringify(m)}\n`);
  }

  /** Sends a last message, then closes once it is written. */
  sendAndClose(m: Message, why: string): void {
    if (this.closed) return;
    this.send(m);
    this.socket.end();
    this.close(why, false);
  }

  close(why: string, destroy = true): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.beat);
    if (destroy) this.socket.destroy();
    this.resolveClosed(why);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private read(chunk: string): void {
    this.lastHeard = Date.now();
    this.buffered += chunk;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0 && !this.closed; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        return this.close('sent a line that is not JSON (not a medvae agent?)');
      }
      if (typeof m !== 'object' || m === null || typeof (m as Message).type !== 'string')
        return this.close('sent a message without a type');
      if ((m as Message).type !== 'beat') this.onMessage(m as Message);
    }
    if (this.buffered.length > MAX_LINE_BYTES) this.close(`sent a line longer than ${MAX_LINE_BYTES} bytes`);
  }
}
