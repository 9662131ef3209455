// The few frames a link exchanges before the collective takes it over (the handshake), and the
// helpers that send and gather them.
import type net from 'node:net';
import type { Server, Socket } from 'node:net';
import { encodeHeader, type FrameHandler, type PayloadSink } from './frame.ts';

/** Collects a small payload whole, then hands it over. */
export function collect(onPayload: (payload: Buffer) => void): PayloadSink {
  const pieces: Buffer[] = [];
  // Copies: a dialled socket's pieces live in a read buffer that the next read overwrites.
  return { write: (p) => pieces.push(Buffer.from(p)), end: () => onPayload(Buffer.concat(pieces)) };
}

/** Holds frames back until the collective takes the link over. */
export function holdingHandler(maxPayloadBytes: number, onError: (e: Error) => void): FrameHandler {
  return { maxPayloadBytes, onHeader: () => 'wait', onError };
}

export function sendFrame(socket: Socket, type: number, payload: Buffer): void {
  socket.write(encodeHeader({ payloadBytes: payload.length, type, ringStep: 0, opSeq: 0, bucket: 0, chunk: 0 }));
  socket.write(payload);
}

export function listenOn(server: Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
