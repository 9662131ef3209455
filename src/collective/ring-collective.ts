// A Collective over two socket links (TCP, or Unix sockets between ranks on one host). Rank r dialled rank r+1 and was dialled by rank r-1; data flows
// against the dial direction, r+1 -> r -> r-1, because only a dialled socket can read into a large
// reused buffer or straight into the gradients (net.connect's onread), and reads are the receiving
// side's main cost. Operations run one at a time in call order and are numbered; frames of an
// operation this rank has not started yet wait in the socket (back-pressure), never in a copy.
import type { Socket } from 'node:net';
import type { Collective, CollectiveStats } from './collective.ts';
import { PeerError, ProtocolError } from './errors.ts';
import { encodeHeader, type FrameHeader, FrameReader, type HeaderVerdict } from './frame.ts';
import type { ElementRange, FlatLayout } from './bucket-plan.ts';
import { ReduceKernel } from './reduce-kernel.ts';
import { AllReduceOp, BroadcastOp, type RingLink, type RingOperation } from './ring-ops.ts';

export interface RingSettings {
  rank: number;
  worldSize: number;
  token: string;
  bucketBytes: number;
  chunkBytes: number;
  timeoutMs: number;
  maxFrameBytes: number;
  log: (line: string) => void;
}

/** One end of an established link: the socket and the reader already consuming it. */
export interface LinkEnd {
  socket: Socket;
  reader: FrameReader;
}

interface Running {
  op: RingOperation;
  resolve: () => void;
  reject: (error: Error) => void;
}

const CLOSE_GRACE_MS = 1000;

export class RingCollective implements Collective, RingLink {
  readonly rank: number;
  readonly worldSize: number;
  readonly position: number;
  readonly reducer: ReduceKernel;
  /** The rank frames come from (rank+1) and the one they go to (rank-1). */
  private readonly inboundRank: number;
  private readonly outboundRank: number;
  private readonly bucketElements: number;
  private readonly chunkElements: number;
  private tail: Promise<unknown> = Promise.resolve();
  private nextSeq = 0;
  private running: Running | null = null;
  private pendingWrites = 0;
  private failure: Error | null = null;
  private closed = false;
  private lastProgress = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private bytesReduced = 0;
  private lastAllReduceMs = 0;
  private lastAllReduceWaitMs = 0;
  /** Sockets move bytes only when this thread's event loop runs. */
  readonly progressesInBackground = false;
  private lastAllReduceStartedAt = 0;
  /** Time in op.start() (the first sends); the readers count the rest. */
  private startingMs = 0;
  /** When the running operation's first inbound frame arrived (null: none yet). */
  private firstFrameAt: number | null = null;

  constructor(
    private readonly settings: RingSettings,
    /** The link this rank dialled (to rank+1): frames arrive on it. */
    private readonly inbound: LinkEnd,
    /** The link rank-1 dialled: frames leave on it. */
    private readonly outbound: LinkEnd,
  ) {
    this.rank = settings.rank;
    this.worldSize = settings.worldSize;
    // Positions increase along the data flow, as the ring operations expect.
    this.position = settings.worldSize - 1 - settings.rank;
    this.inboundRank = (settings.rank + 1) % settings.worldSize;
    this.outboundRank = (settings.rank - 1 + settings.worldSize) % settings.worldSize;
    this.bucketElements = settings.bucketBytes / 4;
    this.chunkElements = settings.chunkBytes / 4;
    this.reducer = new ReduceKernel(this.chunkElements);

    inbound.reader.setHandler({
      maxPayloadBytes: settings.maxFrameBytes,
      onHeader: (h) => this.onHeader(h),
      onError: (e) => this.fail(new PeerError(this.inboundRank, `rank ${this.inboundRank} sent a bad frame: ${e.message}`)),
    });
    outbound.reader.setHandler({
      maxPayloadBytes: 0,
      onHeader: (h) => {
        throw new ProtocolError(`unexpected frame of type ${h.type} on the link this rank sends on`);
      },
      onError: (e) => this.fail(new PeerError(this.outboundRank, `rank ${this.outboundRank} sent a bad frame: ${e.message}`)),
    });
    this.watchLink(inbound.socket, this.inboundRank, 'inbound');
    this.watchLink(outbound.socket, this.outboundRank, 'outbound');
    inbound.reader.resume();
    outbound.reader.resume();
  }

  allReduceMean(buffers: Float32Array[]): Promise<void> {
    return this.enqueue(async () => {
      const started = performance.now();
      await this.run(new AllReduceOp(this, this.takeSeq(), buffers, this.bucketElements, this.chunkElements));
      this.lastAllReduceMs = performance.now() - started;
      this.lastAllReduceWaitMs = (this.firstFrameAt ?? started) - started;
      this.lastAllReduceStartedAt = started;
      for (const b of buffers) this.bytesReduced += b.byteLength;
    });
  }

  broadcast(buffers: Float32Array[], root: number): Promise<void> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      return Promise.reject(new RangeError(`broadcast root ${root} is not a rank of a world of size ${this.worldSize}`));
    }
    return this.enqueue(() =>
      this.run(new BroadcastOp(this, this.takeSeq(), buffers, this.worldSize - 1 - root, this.bucketElements, this.chunkElements)),
    );
  }

  /** An all-reduce of one float: no rank can finish it before every rank has contributed. */
  barrier(): Promise<void> {
    return this.enqueue(() =>
      this.run(new AllReduceOp(this, this.takeSeq(), [new Float32Array(1)], this.bucketElements, this.chunkElements)),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopWatchdog();
    this.running?.reject(new Error(`rank ${this.rank}: collective closed during ${this.running.op.name}`));
    this.running = null;
    // end() rather than destroy(): a FIN after the last bytes, so no peer loses data still in flight to it.
    await Promise.all([this.inbound.socket, this.outbound.socket].map((s) => endGracefully(s)));
  }

  stats(): CollectiveStats {
    return {
      bytesReduced: this.bytesReduced,
      lastAllReduceMs: this.lastAllReduceMs,
      lastAllReduceWaitMs: this.lastAllReduceWaitMs,
      lastAllReduceStartedAt: this.lastAllReduceStartedAt,
      busyMs: this.startingMs + this.inbound.reader.busyMs + this.outbound.reader.busyMs,
    };
  }

  send(header: Omit<FrameHeader, 'payloadBytes'>, layout: FlatLayout, range: ElementRange): void {
    const socket = this.outbound.socket;
    const pieces: Buffer[] = [];
    // Views over the caller's floats: the kernel copies them out; they are not touched again until
    // the operation completes, and it completes only once every write has been flushed.
    layout.forEachPiece(range, (p) => pieces.push(Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    pieces.unshift(encodeHeader({ ...header, payloadBytes: (range.end - range.start) * 4 }));
    this.pendingWrites += 1;
    socket.cork();
    // Write callbacks run in order, so the last piece's callback means the whole frame is flushed.
    pieces.forEach((piece, i) => socket.write(piece, i === pieces.length - 1 ? (e) => this.onWritten(e) : undefined));
    socket.uncork();
  }

  private onWritten(error: Error | null | undefined): void {
    this.pendingWrites -= 1;
    this.lastProgress = Date.now();
    if (error) {
      this.fail(new PeerError(this.outboundRank, `sending to rank ${this.outboundRank} failed: ${error.message}`));
      return;
    }
    this.checkFinished();
  }

  private takeSeq(): number {
    const seq = this.nextSeq >>> 0;
    this.nextSeq += 1;
    return seq;
  }

  private enqueue(run: () => Promise<void>): Promise<void> {
    const result = this.tail.then(() => {
      if (this.closed) throw new Error(`rank ${this.rank}: collective is closed`);
      if (this.failure) throw this.failure;
      return run();
    });
    this.tail = result.catch(() => undefined);
    return result;
  }

  private run(op: RingOperation): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.running = { op, resolve, reject };
      this.firstFrameAt = null;
      this.startWatchdog();
      const starting = performance.now();
      op.start();
      this.startingMs += performance.now() - starting;
      this.inbound.reader.resume();
      this.checkFinished();
    });
  }

  private checkFinished(): void {
    const running = this.running;
    if (!running || running.op.receivedFrames < running.op.expectedFrames || this.pendingWrites > 0) return;
    this.running = null;
    this.stopWatchdog();
    running.resolve();
  }

  private onHeader(header: FrameHeader): HeaderVerdict {
    const running = this.running;
    if (running && header.opSeq === running.op.seq) {
      this.lastProgress = Date.now();
      this.firstFrameAt ??= performance.now();
      const sink = running.op.accept(header);
      return {
        ...sink,
        end: () => {
          sink.end();
          this.checkFinished();
        },
      };
    }
    if (header.opSeq === this.nextSeq >>> 0) return 'wait';
    throw new ProtocolError(`frame of operation ${header.opSeq}, while this rank is at operation ${(this.nextSeq - 1) >>> 0}`);
  }

  private watchLink(socket: Socket, peer: number, side: 'inbound' | 'outbound'): void {
    const onGone = (what: string) => {
      if (this.closed) return;
      const error = new PeerError(peer, `rank ${peer} ${what} (rank ${this.rank}'s ${side} link)`);
      const running = this.running;
      const needed =
        running !== null && (side === 'inbound' ? running.op.receivedFrames < running.op.expectedFrames : this.pendingWrites > 0);
      if (needed) this.fail(error);
      else this.failure ??= error;
    };
    socket.on('error', (e) => onGone(`link failed: ${e.message}`));
    socket.on('close', () => onGone('closed the connection'));
  }

  /** Tears the links down and rejects the running operation; later operations reject with the first failure. */
  private fail(error: Error): void {
    const running = this.running;
    this.running = null;
    if (this.failure === null || running !== null) this.settings.log(`rank ${this.rank}: ${error.message}`);
    this.failure ??= error;
    this.stopWatchdog();
    this.inbound.reader.stop();
    this.outbound.reader.stop();
    this.inbound.socket.destroy();
    this.outbound.socket.destroy();
    running?.reject(error);
  }

  private startWatchdog(): void {
    this.lastProgress = Date.now();
    const timeoutMs = this.settings.timeoutMs;
    const check = () => {
      const running = this.running;
      if (!running) return;
      const idle = Date.now() - this.lastProgress;
      if (idle < timeoutMs) {
        this.watchdog = setTimeout(check, timeoutMs - idle);
        return;
      }
      const waitingForData = running.op.receivedFrames < running.op.expectedFrames;
      const peer = waitingForData ? this.inboundRank : this.outboundRank;
      const what = waitingForData ? `no data from rank ${peer}` : `rank ${peer} stopped reading`;
      this.fail(
        new PeerError(peer, `${running.op.name} (operation ${running.op.seq}) timed out on rank ${this.rank}: ${what} for ${idle} ms`),
      );
    };
    this.watchdog = setTimeout(check, timeoutMs);
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }
}

function endGracefully(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
