// Errors of the distributed layer. Each names what went wrong and, where a peer is involved, its rank,
// so an agent can tell a misconfiguration from a dead worker.

/** Bad options given to a dist function (rank out of range, missing token for a public listen...). */
export class DistConfigError extends Error {
  override readonly name = 'DistConfigError';
}

/** A peer (or a stranger) sent bytes that break the wire protocol. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** A peer went away, stalled past the timeout, or failed; `rank` is the peer held responsible. */
export class PeerError extends Error {
  override readonly name = 'PeerError';
  constructor(
    readonly rank: number,
    message: string,
  ) {
    super(message);
  }
}
