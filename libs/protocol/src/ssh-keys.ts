import { createHash } from 'node:crypto';

/** OpenSSH-style fingerprint of a public key blob: "SHA256:<base64 without padding>". */
export function fingerprintBlob(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Parse an OpenSSH public key line "<type> <base64> [comment]". Returns null if malformed. */
export function parseSshPublicKeyLine(line: string): { type: string; blob: Buffer } | null {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) return null;
  const [type, b64] = parts as [string, string];
  if (!/^[A-Za-z0-9+/]+=*$/.test(b64)) return null;
  const blob = Buffer.from(b64, 'base64');
  // The blob starts with the key type as an SSH string; it must match.
  if (blob.length < 4) return null;
  const n = blob.readUInt32BE(0);
  if (n + 4 > blob.length || blob.subarray(4, 4 + n).toString('latin1') !== type) return null;
  return { type, blob };
}

/** Fingerprint of an OpenSSH public key line, or null when malformed. */
export function fingerprintKeyLine(line: string): string | null {
  const k = parseSshPublicKeyLine(line);
  return k ? fingerprintBlob(k.blob) : null;
}

/** Format a key blob as an OpenSSH line (no comment). */
export function keyLineFromBlob(blob: Buffer): string {
  const n = blob.readUInt32BE(0);
  const type = blob.subarray(4, 4 + n).toString('latin1');
  return `${type} ${blob.toString('base64')}`;
}

/** SHA-256 fingerprint of a DER certificate, colon-less, as printed by the relay: "SHA256:<base64>". */
export function certFingerprint(der: Buffer): string {
  return fingerprintBlob(der);
}

/**
 * The pin of a public key as curl's --pinnedpubkey takes it: "sha256//" and the base64 (padded) SHA-256 of
 * the key's DER SubjectPublicKeyInfo. Not the certificate fingerprint: it stays the same when a
 * certificate is re-issued for the same key.
 */
export function publicKeyPin(spkiDer: Buffer): string {
  return 'sha256//' + createHash('sha256').update(spkiDer).digest('base64');
}
