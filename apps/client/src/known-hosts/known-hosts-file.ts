/**
 * The client's known_hosts (OpenSSH format, `HOSTNAME KEYTYPE BASE64 [comment]`), where each machine is
 * known by its own mssh name. Host fields may be comma-separated lists or OpenSSH hashed names
 * (`|1|salt|hash`); lines this module does not understand (comments, @markers, wildcards) are kept as they
 * are and never match. The file can be used by OpenSSH too (`UserKnownHostsFile` + `HostKeyAlias`).
 */
import { createHmac } from 'node:crypto';
import { fingerprintBlob, parseSshPublicKeyLine } from '@mssh/protocol';
import { appendPrivateFile, readPrivateFile, writePrivateFile } from '../config/secure-files.js';

export interface KnownHostKey {
  /** The host field as written (a name, a comma list or a hashed name). */
  hosts: string;
  type: string;
  blob: Buffer;
  fingerprint: string;
  /** 1-based line number in the file. */
  line: number;
}

interface ParsedLine {
  raw: string;
  key: KnownHostKey | null;
}

function hostFieldMatches(field: string, host: string): boolean {
  const want = host.toLowerCase();
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('|1|')) {
      const [, , salt, hash] = pattern.split('|');
      if (!salt || !hash) continue;
      const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(want).digest('base64');
      if (mac === hash) return true;
    } else if (pattern.toLowerCase() === want) {
      return true;
    }
  }
  return false;
}

export function parseKnownHosts(text: string): ParsedLine[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((raw, i) => {
    const t = raw.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('@')) return { raw, key: null };
    const parts = t.split(/\s+/);
    if (parts.length < 3) return { raw, key: null };
    const [hosts, type, b64] = parts as [string, string, string];
    const k = parseSshPublicKeyLine(`${type} ${b64}`);
    if (!k) return { raw, key: null };
    return { raw, key: { hosts, type: k.type, blob: k.blob, fingerprint: fingerprintBlob(k.blob), line: i + 1 } };
  });
}

export class KnownHostsFile {
  constructor(readonly path: string) {}

  private read(): ParsedLine[] {
    return parseKnownHosts(readPrivateFile(this.path) ?? '');
  }

  /** Every key in the file, in file order. */
  entries(): KnownHostKey[] {
    return this.read().flatMap((l) => (l.key ? [l.key] : []));
  }

  /** The keys pinned for `host`. */
  lookup(host: string): KnownHostKey[] {
    return this.entries().filter((k) => hostFieldMatches(k.hosts, host));
  }

  /** Pin a key for `host` (appended; a key already pinned for the host is not added twice). */
  add(host: string, blob: Buffer): void {
    if (this.lookup(host).some((k) => k.blob.equals(blob))) return;
    const line = `${typeOfBlob(blob)} ${blob.toString('base64')}`;
    if (!parseSshPublicKeyLine(line)) throw new Error('not an SSH public key blob');
    appendPrivateFile(this.path, `${host.toLowerCase()} ${line}\n`);
  }

  /**
   * Remove every key pinned for `host`; returns how many. A comma list loses only that name (and the
   * line goes when no name is left); a matching hashed name removes its line.
   */
  forget(host: string): number {
    const lines = this.read();
    let removed = 0;
    const out: string[] = [];
    for (const l of lines) {
      if (!l.key || !hostFieldMatches(l.key.hosts, host)) {
        out.push(l.raw);
        continue;
      }
      removed++;
      const rest = l.key.hosts.split(',').filter((p) => !hostFieldMatches(p, host));
      if (rest.length > 0) out.push(l.raw.replace(l.key.hosts, rest.join(',')));
    }
    if (removed > 0) writePrivateFile(this.path, out.length ? out.join('\n') + '\n' : '');
    return removed;
  }
}

/** The key type named inside an SSH public key blob. */
export function typeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return '';
  const n = blob.readUInt32BE(0);
  if (n + 4 > blob.length) return '';
  return blob.subarray(4, 4 + n).toString('latin1');
}
