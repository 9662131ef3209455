// Optional encryption of the ring's TCP links (MEDVAE_DIST_TLS=1, or the tls option): TLS 1.3 with a
// pre-shared key derived from MEDVAE_DIST_TOKEN, so no certificates are needed and a peer without
// the token cannot even complete the TLS handshake. Unix socket links stay plain: they never leave
// the machine and their files are readable by this user only.
import { createHmac } from 'node:crypto';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { DistConfigError } from './errors.ts';

export const TLS_ENV = 'MEDVAE_DIST_TLS';
const PSK_IDENTITY = 'medvae-ring';

/** A key of the length TLS 1.3's SHA-256 suites expect; the token itself is used nowhere else on the wire. */
function psk(token: string): Buffer {
  return createHmac('sha256', Buffer.from(token, 'utf8')).update('medvae-ring tls psk v1').digest();
}

/** Whether TCP links are encrypted: the option, else MEDVAE_DIST_TLS=1; it needs a token. */
export function resolveTls(option: boolean | undefined, token: string): boolean {
  const on = option ?? process.env[TLS_ENV] === '1';
  if (on && token === '')
    throw new DistConfigError(`TLS on the ring needs a shared token as its key: set MEDVAE_DIST_TOKEN (or the token option) on every rank`);
  return on;
}

export function tlsServerOptions(token: string, timeoutMs: number): TlsOptions {
  const key = psk(token);
  return {
    minVersion: 'TLSv1.3',
    handshakeTimeout: timeoutMs,
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? key : null),
  };
}

export function tlsClientOptions(token: string): ConnectionOptions {
  const key = psk(token);
  return {
    minVersion: 'TLSv1.3',
    pskCallback: () => ({ psk: key, identity: PSK_IDENTITY }),
    // No certificate with a pre-shared key: the key is the identity.
    checkServerIdentity: () => undefined,
  };
}
