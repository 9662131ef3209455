// The two data movements of the ring, as per-operation state machines fed by received frames.
// All-reduce: 2(w-1) steps per bucket. At step t < w-1 (reduce-scatter) a rank adds the incoming chunk
// into its own copy and passes the sum on; the rank completing a segment's sum divides it by w once and
// starts it round the ring (all-gather), where ranks overwrite their copy and pass it on. Each segment is
// summed in one fixed order and divided on one rank, so every rank ends with the same bits.
// Each chunk moves on as soon as it is processed: chunks of a bucket pipeline through the ring.
import { FrameType, type FrameHeader, type PayloadSink } from './frame.ts';
import { ProtocolError } from './errors.ts';
import { type ElementRange, FlatLayout, RingPlan } from './bucket-plan.ts';
import type { ReduceKernel } from './reduce-kernel.ts';

/** What an operation needs from the ring it runs on. */
export interface RingLink {
  /** Place along the data flow: frames come from position-1 and go to position+1 (mod worldSize). */
  readonly position: number;
  readonly worldSize: number;
  /** Holds one received chunk while it is summed into place. */
  readonly reducer: ReduceKernel;
  send(header: Omit<FrameHeader, 'payloadBytes'>, layout: FlatLayout, range: ElementRange): void;
}

export interface RingOperation {
  readonly name: string;
  readonly seq: number;
  readonly expectedFrames: number;
  readonly receivedFrames: number;
  start(): void;
  /** The sink for a frame of this operation; throws ProtocolError for a frame that does not fit the plan. */
  accept(header: FrameHeader): PayloadSink;
}

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

function checkPayload(header: FrameHeader, range: ElementRange, what: string): void {
  const expected = (range.end - range.start) * 4;
  if (header.payloadBytes !== expected) {
    throw new ProtocolError(
      `${what} frame (step ${header.ringStep}, bucket ${header.bucket}, chunk ${header.chunk}) carries ` +
        `${header.payloadBytes} bytes, expected ${expected}: do all ranks pass buffers of the same sizes?`,
    );
  }
}

/** Copies a frame's payload into the buffers covering `range`, then calls onEnd. */
function copySink(layout: FlatLayout, range: ElementRange, onEnd: () => void): PayloadSink {
  const targets: Uint8Array[] = [];
  layout.forEachPiece(range, (p) => targets.push(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)));
  let target = 0;
  let offset = 0;
  const advance = (bytes: number) => {
    offset += bytes;
    if (offset === targets[target].length) {
      target += 1;
      offset = 0;
    }
  };
  return {
    target: (max) => targets[target].subarray(offset, offset + Math.min(max, targets[target].length - offset)),
    advance,
    write(piece) {
      let from = 0;
      while (from < piece.length) {
        const dst = targets[target];
        const n = Math.min(piece.length - from, dst.length - offset);
        piece.copy(dst, offset, from, from + n);
        from += n;
        advance(n);
      }
    },
    end: onEnd,
  };
}

export class AllReduceOp implements RingOperation {
  readonly name = 'allReduceMean';
  readonly expectedFrames: number;
  receivedFrames = 0;
  private readonly layout: FlatLayout;
  private readonly plan: RingPlan;
  private readonly steps: number;

  constructor(
    private readonly link: RingLink,
    readonly seq: number,
    buffers: readonly Float32Array[],
    bucketElements: number,
    chunkElements: number,
  ) {
    const w = link.worldSize;
    this.layout = new FlatLayout(buffers);
    this.plan = new RingPlan(this.layout.totalElements, w, bucketElements, chunkElements);
    this.steps = 2 * (w - 1);
    let expected = 0;
    for (let step = 0; step < this.steps; step++) expected += this.plan.framesOfSegment(this.segmentReceivedAt(step));
    this.expectedFrames = expected;
  }

  /** Reduce-scatter step t brings segment position-t-1; all-gather step t brings segment position-t. */
  private segmentReceivedAt(step: number): number {
    const w = this.link.worldSize;
    const p = this.link.position;
    return step < w - 1 ? mod(p - step - 1, w) : mod(p - (step - (w - 1)), w);
  }

  start(): void {
    for (let bucket = 0; bucket < this.plan.bucketCount; bucket++) {
      this.plan.segmentChunks(bucket, this.link.position).forEach((range, chunk) => {
        this.link.send({ type: FrameType.Data, ringStep: 0, opSeq: this.seq, bucket, chunk }, this.layout, range);
      });
    }
  }

  accept(header: FrameHeader): PayloadSink {
    if (header.type !== FrameType.Data) throw new ProtocolError(`expected a data frame, got type ${header.type}`);
    if (header.ringStep >= this.steps) throw new ProtocolError(`step ${header.ringStep} out of range (${this.steps} steps)`);
    if (header.bucket >= this.plan.bucketCount)
      throw new ProtocolError(`bucket ${header.bucket} out of range (${this.plan.bucketCount} buckets)`);
    const chunks = this.plan.segmentChunks(header.bucket, this.segmentReceivedAt(header.ringStep));
    if (header.chunk >= chunks.length) throw new ProtocolError(`chunk ${header.chunk} out of range (${chunks.length} chunks)`);
    if (this.receivedFrames >= this.expectedFrames)
      throw new ProtocolError(`more than the ${this.expectedFrames} frames of operation ${this.seq}`);
    const range = chunks[header.chunk];
    checkPayload(header, range, 'data');
    const passOn = () => {
      this.receivedFrames += 1;
      if (header.ringStep + 1 < this.steps) {
        this.link.send({ ...header, ringStep: header.ringStep + 1 }, this.layout, range);
      }
    };
    if (header.ringStep >= this.link.worldSize - 1) return copySink(this.layout, range, passOn);
    return this.reduceSink(range, header.ringStep === this.link.worldSize - 2, passOn);
  }

  /** Gathers the chunk into the staging floats, then adds it into place (and divides on the last addition). */
  private reduceSink(range: ElementRange, lastAddition: boolean, onEnd: () => void): PayloadSink {
    const reducer = this.link.reducer;
    const staging = reducer.staging;
    const stagingBytes = new Uint8Array(staging.buffer, staging.byteOffset, staging.byteLength);
    const divisor = lastAddition ? this.link.worldSize : undefined;
    let filled = 0;
    return {
      target: (max) => stagingBytes.subarray(filled, filled + max),
      advance: (bytes) => {
        filled += bytes;
      },
      write(piece) {
        piece.copy(stagingBytes, filled);
        filled += piece.length;
      },
      end: () => {
        let at = 0;
        this.layout.forEachPiece(range, (dst) => {
          reducer.addInto(dst, at, divisor);
          at += dst.length;
        });
        onEnd();
      },
    };
  }
}

/** Root's buffers travel the ring chunk by chunk; each rank copies them and passes them on, up to the rank just before root. */
export class BroadcastOp implements RingOperation {
  readonly name = 'broadcast';
  readonly expectedFrames: number;
  receivedFrames = 0;
  private readonly layout: FlatLayout;
  private readonly plan: RingPlan;

  constructor(
    private readonly link: RingLink,
    readonly seq: number,
    buffers: readonly Float32Array[],
    /** Root's position, not its rank. */
    private readonly root: number,
    bucketElements: number,
    chunkElements: number,
  ) {
    this.layout = new FlatLayout(buffers);
    this.plan = new RingPlan(this.layout.totalElements, 1, bucketElements, chunkElements);
    this.expectedFrames = link.position === root ? 0 : this.plan.framesOfSegment(0);
  }

  start(): void {
    if (this.link.position !== this.root) return;
    for (let bucket = 0; bucket < this.plan.bucketCount; bucket++) {
      this.plan.segmentChunks(bucket, 0).forEach((range, chunk) => {
        this.link.send({ type: FrameType.Broadcast, ringStep: 0, opSeq: this.seq, bucket, chunk }, this.layout, range);
      });
    }
  }

  accept(header: FrameHeader): PayloadSink {
    if (header.type !== FrameType.Broadcast) throw new ProtocolError(`expected a broadcast frame, got type ${header.type}`);
    if (this.receivedFrames >= this.expectedFrames)
      throw new ProtocolError(`more than the ${this.expectedFrames} frames of broadcast ${this.seq}`);
    if (header.bucket >= this.plan.bucketCount)
      throw new ProtocolError(`bucket ${header.bucket} out of range (${this.plan.bucketCount} buckets)`);
    const chunks = this.plan.segmentChunks(header.bucket, 0);
    if (header.chunk >= chunks.length) throw new ProtocolError(`chunk ${header.chunk} out of range (${chunks.length} chunks)`);
    const range = chunks[header.chunk];
    checkPayload(header, range, 'broadcast');
    const lastInChain = mod(this.link.position + 1, this.link.worldSize) === this.root;
    return copySink(this.layout, range, () => {
      this.receivedFrames += 1;
      if (!lastInChain) this.link.send(header, this.layout, range);
    });
  }
}
