/**
 * This relay's identity towards its fleet peers: a key pair and self-signed certificate of its own in
 * <data-dir>/peer (created on first start), used BOTH ways on peer links (server certificate when a peer
 * dials it, client certificate when it dials a peer). Its SHA-256 fingerprint is published in the
 * relay's `relays` row; a peer accepts a link only from a certificate some live member's row names, and
 * dials a member only if its certificate is the one that member's row names. The trust root is the
 * database, which every member can write anyway.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { certFingerprint } from '@mssh/protocol';
import { writeFileAtomic, writePrivateFile } from '@mssh/cli-kit';
import { codedCliError } from '../errors.js';

export interface PeerIdentity {
  key: string;
  cert: string;
  fingerprint: string;
}

export function peerIdentityPaths(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = join(dataDir, 'peer');
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

export async function loadOrCreatePeerIdentity(dataDir: string, relayId: string): Promise<PeerIdentity> {
  const p = peerIdentityPaths(dataDir);
  if (!existsSync(p.cert) || !existsSync(p.key)) {
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    chmodSync(p.dir, 0o700);
    const notBeforeDate = new Date(Date.now() - 60_000);
    const pems = await generate([{ name: 'commonName', value: `mssh-relay-peer ${relayId}` }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate: new Date(notBeforeDate.getTime() + 20 * 365 * 24 * 3600_000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      ],
    });
    writePrivateFile(p.key, pems.private);
    writeFileAtomic(p.cert, pems.cert, 0o644);
  }
  try {
    const cert = readFileSync(p.cert, 'utf8');
    const key = readFileSync(p.key, 'utf8');
    return { cert, key, fingerprint: certFingerprint(Buffer.from(new X509Certificate(cert).raw)) };
  } catch (e) {
    throw codedCliError(
      'RLY_CLI_ERR_KEY_FILE',
      `cannot read the fleet peer certificate in ${p.dir}: ${(e as Error).message}`,
      `Move ${p.dir} away and start again: a new peer certificate is created and published to the fleet.`,
      e,
    );
  }
}
