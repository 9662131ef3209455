// The rendezvous of a multi-host run, held by node 0's agent (torchrun's static rendezvous, with the
// store folded into the agent). Every node's agent, node 0's own included, joins over TCP:
//   node 0 -> CHALLENGE  protocol version, a fresh nonce, the name of a probe file in the run directory
//   agent  -> JOIN       what it runs (node rank, workers, hash and keys of the resolved config, the
//                        digest of the probe file as it reads it), its own nonce, and
//                        HMAC(token, "agent" | node 0's nonce | join), the token never on the wire
//   node 0 -> WELCOME    HMAC(token, "master" | agent's nonce | node 0's nonce), or REFUSED with the reason
// Once all nodes joined: ASSIGN (world size, this node's first global rank: ranks are node-major), each
// agent starts its workers and sends their PORTS, node 0 answers every agent with the PEERS (hosts,
// ports, and Unix sockets for ranks on the agent's own host). The connection then stays open as the
// control channel: a FAILED from one agent, or its silence, becomes a STOP to all others; DONE ends it.
// After a failure every agent joins again (the next round), as torchrun's elastic agent does.
// This file: the protocol's version, messages and MAC labels, and how settings are compared.
// rendezvous-server.ts is node 0's side, rendezvous-client.ts every agent's.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenMac } from '../collective/handshake.ts';
import type { PeerAddress } from '../collective/ring.ts';

export const RDZV_PROTOCOL_VERSION = 1;
const MAC_LABEL = `medvae-rdzv v${RDZV_PROTOCOL_VERSION}`;

/** A refusal or a rendezvous that cannot complete: not a failure to restart from. */
export class RendezvousError extends Error {
  override name = 'RendezvousError';
}

/** What an agent tells node 0 about itself. */
export interface JoinRequest {
  version: number;
  nodeRank: number;
  nnodes: number;
  /** Workers on this node. */
  localWorldSize: number;
  /** Address its workers are reached at; default: the address node 0 sees the agent connect from. */
  localAddr?: string;
  hostname: string;
  /** The resolved config and the launcher settings every node must share, flattened to dotted keys. */
  settings: Record<string, string>;
  /** sha256 of the probe file as this node reads it from the run directory; null when it is not there. */
  probeDigest: string | null;
}

export interface Assignment {
  round: number;
  worldSize: number;
  /** Global rank of this node's first worker. */
  rankOffset: number;
  nnodes: number;
  /** Where every worker of the round resumes from (node 0's choice), or null for the start. */
  resume: string | null;
}

/** A worker's data-plane address as its agent reports it; node 0 adds the host. */
export interface WorkerPort {
  port: number;
  socketPath: string | null;
}

export interface RankAddress extends PeerAddress {
  node: number;
}

/** Flattens a config (or any JSON value) into dotted keys with JSON values, for comparison key by key. */
export function flattenSettings(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flattenSettings(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = JSON.stringify(value ?? null);
  }
  return out;
}

export function settingsHash(settings: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(settings).sort()) h.update(`${k}=${settings[k]}\n`);
  return h.digest('hex');
}

/** The keys on which two nodes differ, as "key (node 0: a, node 1: b)". */
export function differingKeys(a: Record<string, string>, b: Record<string, string>, nodeA: number, nodeB: number): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k} (node ${nodeA}: ${a[k] ?? 'unset'}, node ${nodeB}: ${b[k] ?? 'unset'})`);
}

export function joinBytes(j: JoinRequest): Buffer {
  return Buffer.from(JSON.stringify(j));
}

/** The agent's proof over node 0's nonce and its join. */
export function agentMac(token: string, serverNonce: Buffer, join: JoinRequest): Buffer {
  return tokenMac(token, `${MAC_LABEL} agent`, serverNonce, joinBytes(join));
}

/** Node 0's proof back, over the agent's nonce and its own. */
export function masterMac(token: string, agentNonce: Buffer, serverNonce: Buffer): Buffer {
  return tokenMac(token, `${MAC_LABEL} master`, agentNonce, serverNonce);
}

/** The probe file's digest as this node reads it from the run directory (null: the file is not there). */
export function probeDigest(runDir: string, probe: string): string | null {
  try {
    return createHash('sha256')
      .update(readFileSync(join(runDir, probe)))
      .digest('hex');
  } catch {
    return null;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
