// The thread that runs one worker's ring (src/collective/ring-thread.ts starts it): its
// sockets are made here and stay here, so the ring moves bytes while the main thread computes.
import { parentPort, workerData } from 'node:worker_threads';
import type { Collective } from '../src/collective/collective.ts';
import { listenForRing, type RingListener } from '../src/collective/ring.ts';
import {
  errorData,
  type FromRingThread,
  type RingOpRequest,
  type ThreadRingOptions,
  type ToRingThread,
} from '../src/collective/ring-thread-protocol.ts';

const port = parentPort!;
const post = (message: FromRingThread) => port.postMessage(message);

let listener: RingListener | undefined;
let collective: Collective | undefined;

function runOp(collective: Collective, request: RingOpRequest): Promise<void> {
  if (request.kind === 'allReduceMean') return collective.allReduceMean(request.buffers);
  if (request.kind === 'broadcast') return collective.broadcast(request.buffers, request.root);
  return collective.barrier();
}

async function close(): Promise<void> {
  await (collective ?? listener)?.close();
  // The main thread learns of the end from the thread's exit.
  port.close();
}

port.on('message', (message: ToRingThread) => {
  if (message.kind === 'close') {
    void close();
  } else if (message.kind === 'connect') {
    listener!.connect(message.peers).then(
      (connected) => {
        collective = connected;
        post({ kind: 'connected' });
      },
      (error: unknown) => {
        post({ kind: 'failed', id: null, error: errorData(error) });
        // No ring to run: end the thread (the listener closed itself).
        port.close();
      },
    );
  } else {
    // Requests are started in the order they came, which is the order the ring runs them in.
    runOp(collective!, message).then(
      () => {
        const { lastAllReduceStartedAt, ...stats } = collective!.stats();
        post({
          kind: 'done',
          id: message.id,
          stats: { ...stats, lastAllReduceStartedAtEpochMs: performance.timeOrigin + lastAllReduceStartedAt },
        });
      },
      (error: unknown) => post({ kind: 'failed', id: message.id, error: errorData(error) }),
    );
  }
});

try {
  listener = await listenForRing({ ...(workerData as ThreadRingOptions), log: (line) => post({ kind: 'log', line }) });
  post({ kind: 'listening', port: listener.port, socketPath: listener.socketPath });
} catch (error) {
  post({ kind: 'failed', id: null, error: errorData(error) });
  port.close();
}
