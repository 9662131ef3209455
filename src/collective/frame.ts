// Wire framing shared by the handshake and the data plane. Every message is a 20-byte header and a
// payload of `payloadBytes`. Headers are small, fixed and little-endian, so a reader knows before
// buffering anything whether a frame is oversized and can refuse it without allocating.
import type { Socket } from 'node:net';
import { ProtocolError } from './errors.ts';

export const HEADER_BYTES = 20;

export const FrameType = {
  Hello: 1,
  Ack: 2,
  Data: 3,
  Broadcast: 4,
  Challenge: 5,
  Proof: 6,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export interface FrameHeader {
  payloadBytes: number;
  type: number;
  /** Ring step (reduce-scatter then all-gather) the payload belongs to. */
  ringStep: number;
  /** Which collective operation of the run: all ranks number their operations alike. */
  opSeq: number;
  bucket: number;
  chunk: number;
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt32LE(h.payloadBytes, 0);
  b.writeUInt8(h.type, 4);
  b.writeUInt8(h.ringStep, 5);
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(h.opSeq >>> 0, 8);
  b.writeUInt32LE(h.bucket, 12);
  b.writeUInt32LE(h.chunk, 16);
  return b;
}

function decodeHeader(b: Buffer): FrameHeader {
  return {
    payloadBytes: b.readUInt32LE(0),
    type: b.readUInt8(4),
    ringStep: b.readUInt8(5),
    opSeq: b.readUInt32LE(8),
    bucket: b.readUInt32LE(12),
    chunk: b.readUInt32LE(16),
  };
}

/** Receives one frame's payload in the pieces the socket delivered it in (views, not copies). */
export interface PayloadSink {
  write(piece: Buffer): void;
  end(): void;
  /**
   * Optional: the final place of the next payload bytes (at most `max`), so that a socket with a read
   * buffer generator reads them there directly, saving a copy. advance() then reports how many landed.
   */
  target?(max: number): Uint8Array;
  advance?(bytes: number): void;
}

/** What a header handler decides: where the payload goes, or 'wait' to hold the frame (and the socket) until later. */
export type HeaderVerdict = PayloadSink | 'wait';

export interface FrameHandler {
  /** Largest payload accepted now; larger frames are refused as soon as their header arrives. */
  maxPayloadBytes: number;
  onHeader(header: FrameHeader): HeaderVerdict;
  /** A refused header, or an exception from onHeader or a sink; the reader stops reading. */
  onError(error: Error): void;
}

/** Size of the buffer a dialled socket reads into: big reads cost far fewer calls than Node's 64 KiB default. */
export const READ_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Splits a socket's byte stream into frames. Incoming bytes are queued by reference and payloads handed
 * to sinks as subarrays, so the only copy is the one the sink chooses to make. The handler can be
 * swapped (handshake, then data) without losing bytes a peer sent early; 'wait' pauses the socket so
 * Socket back-pressure holds the sender until the frame can be placed.
 */
export class FrameReader {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private header: FrameHeader | null = null;
  private sink: PayloadSink | null = null;
  private payloadLeft = 0;
  private stopped = false;
  /** Why reading stopped, kept for a handler set later (bytes can fail while a link changes hands). */
  private failure: Error | null = null;
  private socket: Socket | null = null;
  /** Milliseconds spent handling received bytes (placing payloads, and whatever sinks do: sums, forwarding). */
  busyMs = 0;

  private constructor(private handler: FrameHandler) {}

  /** Reads a socket through its 'data' events (accepted sockets, which cannot take a read buffer). */
  static onDataEvents(socket: Socket, handler: FrameHandler): FrameReader {
    const reader = new FrameReader(handler);
    reader.socket = socket;
    socket.on('data', (data: Buffer) => reader.timed(() => reader.push(data, false)));
    return reader;
  }

  /**
   * A reader for a socket about to be dialled: pass `onread` to net.connect, then bind() the socket.
   * Before each read the reader picks the buffer: the final place of the payload being received when its
   * sink offers one, else exactly the bytes of the next header, else (a frame waiting for its operation,
   * the handshake) one reused buffer of READ_BUFFER_BYTES whose leftovers are copied out.
   */
  static withReadBuffer(handler: FrameHandler): {
    reader: FrameReader;
    onread: { buffer: () => Uint8Array; callback: (bytes: number, buffer: Uint8Array) => boolean };
  } {
    const reader = new FrameReader(handler);
    const general = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let direct = false;
    const buffer = (): Uint8Array => {
      const target = reader.directTarget();
      direct = target !== null;
      if (target !== null) return target;
      // Between frames, read no further than the header so the payload after it can go direct.
      const headerLeft = reader.header === null ? HEADER_BYTES - reader.queuedBytes : 0;
      return headerLeft > 0 ? general.subarray(0, headerLeft) : general;
    };
    const callback = (bytes: number): boolean => {
      reader.timed(() => (direct ? reader.landed(bytes) : reader.push(general.subarray(0, bytes), true)));
      return true;
    };
    return { reader, onread: { buffer, callback } };
  }

  bind(socket: Socket): void {
    this.socket = socket;
  }

  setHandler(handler: FrameHandler): void {
    this.handler = handler;
    if (this.failure) handler.onError(this.failure);
  }

  /** Tries again to place a frame the handler answered 'wait' to. */
  resume(): void {
    this.socket?.resume();
    this.pump();
  }

  stop(): void {
    this.stopped = true;
  }

  private timed(work: () => void): void {
    const start = performance.now();
    work();
    this.busyMs += performance.now() - start;
  }

  /** `borrowed`: the bytes live in a buffer the socket will reuse, so what stays queued is copied out. */
  private push(data: Buffer, borrowed: boolean): void {
    if (this.stopped) return;
    this.queue.push(data);
    this.queuedBytes += data.length;
    this.pump();
    if (borrowed && this.queuedBytes > 0) {
      for (let i = 0; i < this.queue.length; i++) if (this.queue[i].buffer === data.buffer) this.queue[i] = Buffer.from(this.queue[i]);
    }
  }

  /** Where the next bytes can be read straight to: the current payload's final place, if its sink has one. */
  private directTarget(): Uint8Array | null {
    if (this.stopped || this.sink === null || this.payloadLeft === 0 || this.queuedBytes > 0 || !this.sink.target) return null;
    return this.sink.target(this.payloadLeft);
  }

  /** `bytes` were read into the buffer directTarget() gave. */
  private landed(bytes: number): void {
    if (this.stopped || this.sink === null) return;
    this.payloadLeft -= bytes;
    this.sink.advance?.(bytes);
    this.pump();
  }

  private pump(): void {
    try {
      while (!this.stopped) {
        if (this.header === null) {
          if (this.queuedBytes < HEADER_BYTES) return;
          this.header = decodeHeader(this.take(HEADER_BYTES));
          if (this.header.payloadBytes > this.handler.maxPayloadBytes) {
            throw new ProtocolError(
              `frame of type ${this.header.type} announces ${this.header.payloadBytes} payload bytes, ` +
                `over the ${this.handler.maxPayloadBytes}-byte limit`,
            );
          }
        }
        if (this.sink === null) {
          const verdict = this.handler.onHeader(this.header);
          if (verdict === 'wait') {
            this.socket?.pause();
            return;
          }
          this.sink = verdict;
          this.payloadLeft = this.header.payloadBytes;
        }
        while (this.payloadLeft > 0 && this.queuedBytes > 0) {
          const piece = this.takeUpTo(this.payloadLeft);
          this.payloadLeft -= piece.length;
          this.sink.write(piece);
        }
        if (this.payloadLeft > 0) return;
        const finished = this.sink;
        this.header = null;
        this.sink = null;
        finished.end();
      }
    } catch (error) {
      this.stopped = true;
      this.failure = error instanceof Error ? error : new Error(String(error));
      this.handler.onError(this.failure);
    }
  }

  /** Exactly n bytes (n small): a view when they sit in one buffer, else a copy of the spanning bytes. */
  private take(n: number): Buffer {
    const first = this.queue[0];
    if (first.length >= n) return this.takeUpTo(n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const piece = this.takeUpTo(n - filled);
      piece.copy(out, filled);
      filled += piece.length;
    }
    return out;
  }

  /** Up to n bytes from the front buffer, as a view. */
  private takeUpTo(n: number): Buffer {
    const first = this.queue[0];
    this.queuedBytes -= Math.min(n, first.length);
    if (first.length <= n) {
      this.queue.shift();
      return first;
    }
    this.queue[0] = first.subarray(n);
    return first.subarray(0, n);
  }
}
