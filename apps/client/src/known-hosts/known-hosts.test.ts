import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprintBlob } from '@mssh/protocol';
import { isCliError } from '../errors.js';
import { KnownHostsFile } from './known-hosts-file.js';
import { createHostKeyCheck, decideHostKey, preferredHostKeyAlgorithms } from './host-key-policy.js';

function sshString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
/** A syntactically valid ssh-ed25519 public key blob (random key material). */
function edBlob(): Buffer {
  return Buffer.concat([sshString('ssh-ed25519'), sshString(randomBytes(32))]);
}
function ecdsaBlob(): Buffer {
  return Buffer.concat([
    sshString('ecdsa-sha2-nistp256'),
    sshString('nistp256'),
    sshString(Buffer.concat([Buffer.from([4]), randomBytes(64)])),
  ]);
}
const line = (b: Buffer) =>
  `${b.readUInt32BE(0) === 11 ? 'ssh-ed25519' : 'ecdsa-sha2-nistp256'} ${b.toString('base64')}`;

let dir: string;
let kh: KnownHostsFile;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-kh-'));
  kh = new KnownHostsFile(join(dir, 'known_hosts'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('known_hosts file', () => {
  it('pins a key under the host name in OpenSSH format, 0600, without duplicates', () => {
    const k = edBlob();
    kh.add('Laptop', k);
    kh.add('laptop', k);
    const text = readFileSync(kh.path, 'utf8');
    expect(text).toBe(`laptop ${line(k)}\n`);
    expect(statSync(kh.path).mode & 0o777).toBe(0o600);
    const found = kh.lookup('laptop');
    expect(found).toHaveLength(1);
    expect(found[0]!.blob.equals(k)).toBe(true);
    expect(found[0]!.fingerprint).toBe(fingerprintBlob(k));
    expect(kh.lookup('desktop')).toEqual([]);
  });

  it('matches comma lists and hashed names, ignores comments, markers and junk', () => {
    const a = edBlob();
    const b = ecdsaBlob();
    const c = edBlob();
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('laptop').digest('base64')}`;
    writeFileSync(
      kh.path,
      [
        `# comment`,
        `desktop,laptop ${line(a)} some comment`,
        `${hashed} ${line(b)}`,
        `@cert-authority laptop ${line(c)}`,
        'laptop not-a-key',
        '',
      ].join('\n'),
    );
    const found = kh.lookup('laptop').map((k) => k.blob.toString('base64'));
    expect(found).toEqual([a.toString('base64'), b.toString('base64')]);
  });

  it('forget removes the host (only that name of a comma list) and keeps everything else', () => {
    const a = edBlob();
    const b = edBlob();
    const other = edBlob();
    writeFileSync(
      kh.path,
      [`# keep me`, `desktop,laptop ${line(a)}`, `laptop ${line(b)}`, `server ${line(other)}`, ''].join('\n'),
      { mode: 0o600 },
    );
    expect(kh.forget('laptop')).toBe(2);
    expect(readFileSync(kh.path, 'utf8')).toBe(
      [`# keep me`, `desktop ${line(a)}`, `server ${line(other)}`, ''].join('\n'),
    );
    expect(kh.lookup('laptop')).toEqual([]);
    expect(kh.forget('laptop')).toBe(0);
  });
});

describe('host key rule', () => {
  it('a pinned key matches; any other key is "changed" even if the relay attests it', () => {
    const pinned = edBlob();
    const presented = edBlob();
    expect(decideHostKey({ presented: pinned, pinned: [pinned], attested: [] })).toEqual({ kind: 'known' });
    const d = decideHostKey({ presented, pinned: [pinned], attested: [line(presented)] });
    expect(d.kind).toBe('changed');
  });

  it('first use: accepted (pin) only when attested, otherwise refused', () => {
    const k = edBlob();
    expect(decideHostKey({ presented: k, pinned: [], attested: [line(ecdsaBlob()), line(k)] })).toEqual({
      kind: 'pin',
    });
    expect(decideHostKey({ presented: k, pinned: [], attested: [line(edBlob())] }).kind).toBe('not-attested');
    expect(decideHostKey({ presented: k, pinned: [], attested: [] }).kind).toBe('not-attested');
    expect(decideHostKey({ presented: k, pinned: [], attested: ['garbage'] }).kind).toBe('not-attested');
  });

  it('the check pins on first use, then refuses a changed key with both fingerprints and the fix', async () => {
    const first = edBlob();
    const check = createHostKeyCheck({ host: 'laptop', knownHosts: kh, attested: [line(first)] });
    expect(check.algorithms?.[0]).toBe('ssh-ed25519');
    await check.verify(first);
    expect(kh.lookup('laptop').map((k) => k.fingerprint)).toEqual([fingerprintBlob(first)]);
    await check.verify(first); // a rekey sees its own pin

    const swapped = edBlob();
    const later = createHostKeyCheck({ host: 'laptop', knownHosts: kh, attested: [line(swapped)] });
    let err: unknown;
    try {
      await later.verify(swapped);
    } catch (e) {
      err = e;
    }
    expect(isCliError(err)).toBe(true);
    const e = err as Error & { code: string; hint: string };
    expect(e.code).toBe('CLI_ERR_HOST_KEY_CHANGED');
    expect(e.message).toContain('HOST KEY FOR laptop HAS CHANGED');
    expect(e.message).toContain(fingerprintBlob(first));
    expect(e.message).toContain(fingerprintBlob(swapped));
    expect(e.hint).toContain('mssh known-hosts forget laptop');
    expect(kh.lookup('laptop')).toHaveLength(1);
  });

  it('an unattested first key is refused and nothing is pinned', async () => {
    const check = createHostKeyCheck({ host: 'laptop', knownHosts: kh, attested: [line(edBlob())] });
    const presented = edBlob();
    await expect(Promise.resolve().then(() => check.verify(presented))).rejects.toMatchObject({
      code: 'CLI_ERR_HOST_KEY_NOT_ATTESTED',
    });
    expect(kh.lookup('laptop')).toEqual([]);
  });

  it('prefers the algorithms of known key types, keeping the rest as fallbacks', () => {
    expect(preferredHostKeyAlgorithms([])).toBeNull();
    const l = preferredHostKeyAlgorithms(['ecdsa-sha2-nistp256'])!;
    expect(l[0]).toBe('ecdsa-sha2-nistp256');
    expect(l).toContain('ssh-ed25519');
    expect(new Set(l).size).toBe(l.length);
    expect(preferredHostKeyAlgorithms(['ssh-rsa'])!.slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  });
});

describe('host key check: the rescan asked for on an unattested key (issue 17.4)', () => {
  it('with nothing pinned, accepts and pins a key the fresh attestation has, asking once', async () => {
    const old = edBlob();
    const fresh = edBlob();
    let asked = 0;
    const check = createHostKeyCheck({
      host: 'laptop',
      knownHosts: kh,
      attested: [line(old)],
      refresh: async () => {
        asked++;
        return [line(fresh)];
      },
    });
    await check.verify(fresh);
    expect(asked).toBe(1);
    expect(kh.lookup('laptop').map((k) => k.blob)).toEqual([fresh]);
  });

  it('never consults it when a key is pinned: the pinned key wins even if the relay now attests another', async () => {
    const pinned = edBlob();
    const other = edBlob();
    kh.add('laptop', pinned);
    let asked = 0;
    const check = createHostKeyCheck({
      host: 'laptop',
      knownHosts: kh,
      attested: [],
      refresh: async () => {
        asked++;
        return [line(other)];
      },
    });
    const err = await Promise.resolve(check.verify(other)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isCliError(err) && err.code).toBe('CLI_ERR_HOST_KEY_CHANGED');
    expect(asked).toBe(0);
    expect(kh.lookup('laptop').map((k) => k.blob)).toEqual([pinned]);
  });

  it('refuses when the fresh attestation still lacks the key (and when the rescan fails)', async () => {
    const presented = edBlob();
    const check = createHostKeyCheck({
      host: 'laptop',
      knownHosts: kh,
      attested: [line(edBlob())],
      refresh: async () => [line(edBlob())],
    });
    const err = await Promise.resolve(check.verify(presented)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isCliError(err) && err.code).toBe('CLI_ERR_HOST_KEY_NOT_ATTESTED');
    const failing = createHostKeyCheck({
      host: 'laptop',
      knownHosts: kh,
      attested: [line(edBlob())],
      refresh: async () => {
        throw new Error('agent offline');
      },
    });
    const err2 = await Promise.resolve(failing.verify(presented)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isCliError(err2) && err2.code).toBe('CLI_ERR_HOST_KEY_NOT_ATTESTED');
    expect(kh.lookup('laptop')).toEqual([]);
  });
});
