/**
 * The host key an SSH server presents, read by `mssh proxy` from the plaintext start of the connection it
 * carries, so the proxy itself can check it (and refuse a changed key with the mssh fix) before OpenSSH
 * sees it. Small and dependency-free: the lean entry (lean-main.ts) loads it.
 *
 *   client ─▶ version line, KEXINIT(20: cookie, kex name-list, ...), KEX init ...
 *   server ─▶ [other lines], version line, KEXINIT(20), [GEX group(31)], KEX reply(31, or 33 for
 *             diffie-hellman-group-exchange-*: string K_S = the host key, ...), NEWKEYS, then ciphertext
 *
 * Before the first NEWKEYS every packet is `uint32 packet_length | byte padding_length | payload | padding`
 * with no MAC (RFC 4253 sections 4.2, 6, 7, 8; RFC 4419 for group exchange). The key exchange is the first
 * name of the client's kex list that the server also lists (RFC 4253 7.1). GSS-API key exchange (gss-*,
 * Debian's patch) numbers its messages differently: it is not read (the caller falls back).
 */

export const SSH_MSG_KEXINIT = 20;
/** KEXDH_REPLY, KEX_ECDH_REPLY and the hybrid (sntrup761x25519, mlkem768x25519) replies. */
export const SSH_MSG_KEX_REPLY = 31;
export const SSH_MSG_KEX_DH_GEX_REPLY = 33;
/** OpenSSH's own limit for one packet (PACKET_MAX_SIZE). */
const MAX_PACKET = 256 * 1024;
/** Bytes read before giving up on finding the key (lines before the version line, KEXINIT, group). */
export const MAX_PREAMBLE = 512 * 1024;

export type PlainItem =
  { kind: 'line'; length: number; text: string } | { kind: 'packet'; length: number; payload: Buffer };

/** Thrown when the bytes are not the plaintext start of an SSH connection. */
export class NotSshError extends Error {}

/**
 * Splits one direction of an SSH connection into its version line (and the lines before it) and then its
 * plaintext packets. `push` bytes in; `next()` gives the next whole item or null when more bytes are needed.
 */
export class PlainSshReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private versionSeen = false;
  /** Bytes taken out by next() since the start. */
  consumed = 0;

  push(chunk: Buffer): void {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
  }

  /** The bytes pushed and not yet taken by next(). */
  rest(): Buffer {
    return this.buf.subarray(this.pos);
  }

  next(): PlainItem | null {
    const b = this.buf;
    const at = this.pos;
    if (!this.versionSeen) {
      const nl = b.indexOf(0x0a, at);
      if (nl < 0) {
        if (b.length - at > 8192) throw new NotSshError('an over-long line before the SSH version line');
        return null;
      }
      const text = b.subarray(at, nl + 1).toString('latin1');
      if (text.startsWith('SSH-')) this.versionSeen = true;
      return this.take({ kind: 'line', length: nl + 1 - at, text });
    }
    if (b.length - at < 5) return null;
    const len = b.readUInt32BE(at);
    if (len < 5 || len > MAX_PACKET) throw new NotSshError(`a packet length of ${len}`);
    if (b.length - at < 4 + len) return null;
    const padding = b[at + 4]!;
    const payloadLen = len - 1 - padding;
    if (payloadLen < 1) throw new NotSshError('a packet with no payload');
    return this.take({ kind: 'packet', length: 4 + len, payload: b.subarray(at + 5, at + 5 + payloadLen) });
  }

  private take<T extends PlainItem>(item: T): T {
    this.pos += item.length;
    this.consumed += item.length;
    return item;
  }
}

/** The kex algorithm name-list of a KEXINIT payload. */
export function kexAlgorithmsOf(kexinit: Buffer): string[] {
  if (kexinit[0] !== SSH_MSG_KEXINIT || kexinit.length < 21) throw new NotSshError('not a KEXINIT');
  const n = kexinit.readUInt32BE(17);
  if (21 + n > kexinit.length) throw new NotSshError('a KEXINIT with a truncated kex list');
  return kexinit
    .subarray(21, 21 + n)
    .toString('latin1')
    .split(',')
    .filter((s) => s.length > 0);
}

/** The message that carries the host key for the kex both sides agree on; null when not known here. */
export function hostKeyMessageFor(client: string[], server: string[]): number | null {
  const kex = client.find((k) => server.includes(k));
  if (!kex || kex.startsWith('gss-')) return null;
  return kex.startsWith('diffie-hellman-group-exchange-') ? SSH_MSG_KEX_DH_GEX_REPLY : SSH_MSG_KEX_REPLY;
}

/** K_S, the first string of the reply payload. */
export function hostKeyOf(reply: Buffer): Buffer {
  if (reply.length < 5) throw new NotSshError('a truncated key exchange reply');
  const n = reply.readUInt32BE(1);
  if (n < 4 || 5 + n > reply.length) throw new NotSshError('a key exchange reply with a truncated host key');
  return Buffer.from(reply.subarray(5, 5 + n));
}

/**
 * Watches both directions until the server's key exchange reply. `client(chunk)` and `server(chunk)` take
 * the bytes as they pass; `server` returns how many bytes of everything pushed so far may be passed on
 * before the reply packet, and sets `found` when the reply is there (its packet and what follows are
 * held back by the caller). `unknown` is set when the host key cannot be read (GSS-API, malformed, too
 * much before it): the caller then falls back to OpenSSH's own check.
 */
export class HostKeyWatch {
  private readonly c = new PlainSshReader();
  private readonly s = new PlainSshReader();
  private clientKex: string[] | null = null;
  private serverKex: string[] | null = null;
  private clientDone = false;
  /** The presented key once found. */
  found: Buffer | null = null;
  /** Why the key cannot be read, once known. */
  unknown: string | null = null;

  get done(): boolean {
    return this.found !== null || this.unknown !== null;
  }

  /** True once the client's KEXINIT has been read (or it cannot be). */
  get clientRead(): boolean {
    return this.clientDone;
  }

  client(chunk: Buffer): void {
    if (this.clientDone) return;
    try {
      this.c.push(chunk);
      for (let it = this.c.next(); it; it = this.c.next()) {
        if (it.kind !== 'packet') continue;
        this.clientKex = kexAlgorithmsOf(it.payload);
        this.clientDone = true;
        return;
      }
      if (this.c.consumed + this.c.rest().length > MAX_PREAMBLE) throw new NotSshError('no KEXINIT from the client');
    } catch (e) {
      this.clientDone = true;
      this.fail(`the client's side: ${(e as Error).message}`);
    }
  }

  /** Returns the number of server bytes (counted from the first pushed) that may be passed on. */
  server(chunk: Buffer): number {
    if (this.done) return this.s.consumed;
    try {
      this.s.push(chunk);
      for (;;) {
        const start = this.s.consumed;
        const it = this.s.next();
        if (!it) break;
        if (it.kind !== 'packet') continue;
        const type = it.payload[0];
        if (this.serverKex === null) {
          if (type !== SSH_MSG_KEXINIT) continue; // an IGNORE or DEBUG before it
          this.serverKex = kexAlgorithmsOf(it.payload);
          continue;
        }
        if (this.clientKex === null) throw new NotSshError('the server answered before the client sent KEXINIT');
        const want = hostKeyMessageFor(this.clientKex, this.serverKex);
        if (want === null) throw new NotSshError('a key exchange this proxy does not read');
        if (type !== want) continue; // the group of a group exchange, IGNORE, DEBUG
        this.found = hostKeyOf(it.payload);
        return start;
      }
      if (this.s.consumed + this.s.rest().length > MAX_PREAMBLE) throw new NotSshError('no key exchange reply');
    } catch (e) {
      this.fail(`the server's side: ${(e as Error).message}`);
    }
    return this.s.consumed;
  }

  private fail(why: string): void {
    if (this.found === null && this.unknown === null) this.unknown = why;
  }
}
