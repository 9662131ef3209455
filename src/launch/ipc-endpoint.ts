// comlink over a child process's IPC channel: the control plane between the agent and its workers.
//
// Encoding: every comlink message is packed by msgpackr (structured-clone mode: typed arrays keep their
// type, Maps, Sets, Dates, Errors and shared references survive) into one Buffer inside a small
// envelope. Fork the worker with `serialization: 'advanced'` so that Buffer crosses as raw bytes; the
// default JSON channel also works but spells every byte as a number. Packing ourselves rather than
// handing comlink's objects to the channel makes the encoding independent of the fork option, and the
// envelope lets other IPC traffic share the channel untouched.
//
// Liveness: comlink waits forever for an answer. Here every request is remembered until its answer
// arrives; when the other process exits or the channel closes, each pending request (and any made
// later) is answered with a thrown WorkerExitedError, so callers see a clear rejection, not a hang.
import type { ChildProcess } from 'node:child_process';
import type { Endpoint } from 'comlink';
import { Packr } from 'msgpackr';

const CHANNEL = 'medvae-rpc';
/** comlink request types, each answered by one message with the same id. */
const REQUEST_TYPES = new Set(['GET', 'SET', 'APPLY', 'CONSTRUCT', 'ENDPOINT', 'RELEASE']);

// Records (msgpackr's default) keep plain objects apart from Maps, so Maps can decode as Maps; each
// message carries its own record definitions, so the two processes need no shared state.
const packr = new Packr({ structuredClone: true, mapsAsObjects: false });
/** A channel closing usually means the process is exiting: wait this long for 'exit' to say how. */
const EXIT_AFTER_DISCONNECT_MS = 250;

export class WorkerExitedError extends Error {
  override readonly name = 'WorkerExitedError';
}

export class IpcEndpointError extends Error {
  override readonly name = 'IpcEndpointError';
}

interface Envelope {
  channel: typeof CHANNEL;
  bytes: Uint8Array;
}

type Listener = Parameters<Endpoint['addEventListener']>[1];

/** What both ends of the channel offer: a ChildProcess in the parent, `process` in the child. */
interface IpcPort {
  send(message: Envelope, callback: (error: Error | null) => void): void;
  on(event: 'message', listener: (message: unknown) => void): void;
}

/** The envelope's bytes: a Uint8Array over an advanced channel, {type:'Buffer', data} over a JSON one. */
function envelopeBytes(message: unknown): Uint8Array | null {
  if (typeof message !== 'object' || message === null) return null;
  const m = message as { channel?: unknown; bytes?: unknown };
  if (m.channel !== CHANNEL) return null;
  if (m.bytes instanceof Uint8Array) return m.bytes;
  const json = m.bytes as { type?: unknown; data?: unknown } | undefined;
  if (json?.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data as number[]);
  return null;
}

function messageId(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const id = (message as { id?: unknown }).id;
  return typeof id === 'string' ? id : undefined;
}

/** The answer comlink turns into a rejected call: a thrown error, as a worker would send it. */
function thrownAnswer(id: string, error: Error): unknown {
  return {
    id,
    type: 'HANDLER',
    name: 'throw',
    value: { isError: true, value: { name: error.name, message: error.message, stack: error.stack } },
  };
}

class IpcEndpoint implements Endpoint {
  private readonly listeners = new Set<Listener>();
  private readonly pending = new Set<string>();
  private gone: Error | null = null;

  constructor(
    private readonly port: IpcPort,
    private readonly peerName: string,
  ) {
    port.on('message', (message) => {
      const bytes = envelopeBytes(message);
      if (bytes === null) return;
      let data: unknown;
      try {
        data = packr.unpack(bytes);
      } catch (error) {
        // A message that does not decode has no id to answer; dropping it beats crashing the process.
        console.warn(`[medvae ipc] dropped an undecodable message from ${peerName}: ${(error as Error).message}`);
        return;
      }
      const id = messageId(data);
      if (id !== undefined) this.pending.delete(id);
      this.dispatch(data);
    });
  }

  /** The other side can no longer answer: reject what is pending and everything asked from now on. */
  markGone(reason: string): void {
    if (this.gone) return;
    this.gone = new WorkerExitedError(`${this.peerName} ${reason}`);
    for (const id of this.pending) this.dispatch(thrownAnswer(id, this.gone));
    this.pending.clear();
  }

  postMessage(message: unknown, transfer?: Transferable[]): void {
    if (transfer && transfer.length > 0) {
      throw new IpcEndpointError('comlink proxies and transferables cannot cross a process boundary; pass plain data');
    }
    const id = messageId(message);
    const type = (message as { type?: unknown } | null)?.type;
    const isRequest = id !== undefined && typeof type === 'string' && REQUEST_TYPES.has(type);
    if (this.gone) {
      // Answer asynchronously, as a real answer would arrive.
      const gone = this.gone;
      if (isRequest) setImmediate(() => this.dispatch(thrownAnswer(id, gone)));
      return;
    }
    if (isRequest) this.pending.add(id);
    const envelope: Envelope = { channel: CHANNEL, bytes: packr.pack(message) };
    this.port.send(envelope, (error) => {
      if (error && isRequest && this.pending.delete(id)) {
        this.dispatch(thrownAnswer(id, new WorkerExitedError(`${this.peerName} could not be reached: ${error.message}`)));
      }
    });
  }

  addEventListener(_type: string, listener: Listener): void {
    this.listeners.add(listener);
  }

  removeEventListener(_type: string, listener: Listener): void {
    this.listeners.delete(listener);
  }

  private dispatch(data: unknown): void {
    const event = { data } as MessageEvent;
    for (const listener of this.listeners) {
      if (typeof listener === 'function') listener(event);
      else listener.handleEvent(event);
    }
  }
}

/** Agent side: talk to a forked worker. Calls pending when it exits reject with WorkerExitedError. */
export function childProcessEndpoint(child: ChildProcess): Endpoint {
  if (!child.connected && child.exitCode === null && child.signalCode === null) {
    throw new IpcEndpointError(`worker pid ${child.pid} has no IPC channel: fork it (or spawn with an 'ipc' stdio entry)`);
  }
  const endpoint = new IpcEndpoint(
    {
      send: (message, callback) => {
        child.send(message, (error) => callback(error ?? null));
      },
      on: (event, listener) => child.on(event, listener),
    },
    `worker pid ${child.pid}`,
  );
  child.once('exit', (code, signal) => endpoint.markGone(signal ? `was killed by ${signal}` : `exited with code ${code}`));
  child.once('disconnect', () => {
    setTimeout(() => endpoint.markGone('closed its IPC channel'), EXIT_AFTER_DISCONNECT_MS).unref();
  });
  if (child.exitCode !== null || child.signalCode !== null) endpoint.markGone('had already exited');
  return endpoint;
}

/** Worker side: talk to the process that forked this one. */
export function parentProcessEndpoint(): Endpoint {
  const send = process.send?.bind(process);
  if (!send) throw new IpcEndpointError('this process has no IPC channel to a parent: start it with child_process.fork');
  const endpoint = new IpcEndpoint(
    {
      send: (message, callback) => {
        send(message, undefined, undefined, (error) => callback(error ?? null));
      },
      on: (event, listener) => process.on(event, listener),
    },
    'the agent process',
  );
  process.once('disconnect', () => endpoint.markGone('closed the IPC channel'));
  return endpoint;
}
