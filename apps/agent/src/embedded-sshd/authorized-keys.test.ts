import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateEd25519KeyPair } from '@mssh/protocol/ssh2-keys';
import {
  addAuthorizedKey,
  authorizedKeysPath,
  listAuthorizedKeys,
  parseAuthorizedKeysLine,
  removeAuthorizedKey,
} from './authorized-keys.js';

function keyPair(comment: string) {
  return generateEd25519KeyPair(comment);
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-authkeys-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('parseAuthorizedKeysLine', () => {
  const { public: pub } = keyPair('alice@laptop');
  const [type, b64] = pub.split(' ');

  it('treats blank lines and comments as blank', () => {
    expect(parseAuthorizedKeysLine('')).toEqual({ kind: 'blank' });
    expect(parseAuthorizedKeysLine('   # a comment')).toEqual({ kind: 'blank' });
  });

  it('parses an options-free line with its comment and fingerprint', () => {
    const p = parseAuthorizedKeysLine(pub);
    expect(p.kind).toBe('key');
    if (p.kind !== 'key') return;
    expect(p.key.type).toBe('ssh-ed25519');
    expect(p.key.comment).toBe('alice@laptop');
    expect(p.key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(p.key.keyLine).toBe(`${type} ${b64}`);
    expect(p.key.options).toEqual({
      noPty: false,
      noPortForwarding: false,
      noAgentForwarding: false,
      noX11Forwarding: false,
    });
  });

  it('parses enforceable options, including a quoted command with escaped quotes and blanks', () => {
    const p = parseAuthorizedKeysLine(`restrict,pty,command="echo \\"hi there\\", x" ${type} ${b64} backup key`);
    expect(p.kind).toBe('key');
    if (p.kind !== 'key') return;
    expect(p.key.options).toEqual({
      noPty: false,
      noPortForwarding: true,
      noAgentForwarding: true,
      noX11Forwarding: true,
      command: 'echo "hi there", x',
    });
    expect(p.key.comment).toBe('backup key');
  });

  it('skips lines with options it cannot enforce, certificates, unknown types and malformed keys', () => {
    expect(parseAuthorizedKeysLine(`from="10.0.0.1" ${type} ${b64}`)).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/from/),
    });
    expect(parseAuthorizedKeysLine(`ssh-ed25519-cert-v01@openssh.com ${b64}`)).toMatchObject({ kind: 'invalid' });
    expect(parseAuthorizedKeysLine('ssh-foo AAAA')).toMatchObject({ kind: 'invalid' });
    expect(parseAuthorizedKeysLine(`ssh-rsa ${b64}`)).toMatchObject({ kind: 'invalid' }); // type does not match the blob
    expect(parseAuthorizedKeysLine('ssh-ed25519 !!!')).toMatchObject({ kind: 'invalid' });
    expect(parseAuthorizedKeysLine(`command="unterminated ${type} ${b64}`)).toMatchObject({ kind: 'invalid' });
  });
});

describe('addAuthorizedKey / listAuthorizedKeys / removeAuthorizedKey', () => {
  it('adds a .pub file once, writes mode 0600, and lists it', async () => {
    const a = keyPair('alice@laptop');
    const file = join(dir, 'id.pub');
    writeFileSync(file, a.public + '\n');
    const first = await addAuthorizedKey(join(dir, 'state'), file);
    expect(first.added).toHaveLength(1);
    const again = await addAuthorizedKey(join(dir, 'state'), file);
    expect(again.added).toHaveLength(0);
    expect(again.alreadyPresent).toHaveLength(1);
    expect(statSync(authorizedKeysPath(join(dir, 'state'))).mode & 0o777).toBe(0o600);
    const { keys, skipped } = await listAuthorizedKeys(join(dir, 'state'));
    expect(skipped).toEqual([]);
    expect(keys.map((k) => k.comment)).toEqual(['alice@laptop']);
  });

  it('adds a key given as a line, keeping existing lines and comments verbatim', async () => {
    const path = authorizedKeysPath(dir);
    writeFileSync(path, '# managed by hand\nnot a key at all'); // no trailing newline
    const b = keyPair('bob@desk');
    await addAuthorizedKey(dir, b.public);
    expect(readFileSync(path, 'utf8')).toBe(`# managed by hand\nnot a key at all\n${b.public}\n`);
    const { keys, skipped } = await listAuthorizedKeys(dir);
    expect(keys).toHaveLength(1);
    expect(skipped).toEqual([{ lineNo: 2, reason: expect.any(String) }]);
  });

  it('refuses private keys, missing files and non-keys with coded errors', async () => {
    const a = keyPair('x');
    const priv = join(dir, 'id');
    writeFileSync(priv, a.private);
    await expect(addAuthorizedKey(dir, priv)).rejects.toMatchObject({ code: 'AGT_ERR_AUTHKEY_PRIVATE' });
    await expect(addAuthorizedKey(dir, join(dir, 'nope.pub'))).rejects.toMatchObject({
      code: 'AGT_ERR_AUTHKEY_INVALID',
    });
    const junk = join(dir, 'junk.pub');
    writeFileSync(junk, 'hello world\n');
    await expect(addAuthorizedKey(dir, junk)).rejects.toMatchObject({ code: 'AGT_ERR_AUTHKEY_INVALID' });
  });

  it('removes by fingerprint (with or without SHA256:) or by comment, and says when nothing matches', async () => {
    const a = keyPair('alice@laptop');
    const b = keyPair('bob@desk');
    const c = keyPair('carol@box');
    for (const k of [a, b, c]) await addAuthorizedKey(dir, k.public);
    const { keys } = await listAuthorizedKeys(dir);
    const fpA = keys.find((k) => k.comment === 'alice@laptop')!.fingerprint;
    const fpB = keys.find((k) => k.comment === 'bob@desk')!.fingerprint;

    expect((await removeAuthorizedKey(dir, fpA)).removed.map((k) => k.comment)).toEqual(['alice@laptop']);
    expect((await removeAuthorizedKey(dir, fpB.slice('SHA256:'.length))).removed.map((k) => k.comment)).toEqual([
      'bob@desk',
    ]);
    expect((await removeAuthorizedKey(dir, 'carol@box')).removed).toHaveLength(1);
    expect((await listAuthorizedKeys(dir)).keys).toEqual([]);
    await expect(removeAuthorizedKey(dir, 'nobody')).rejects.toMatchObject({ code: 'AGT_ERR_AUTHKEY_NOT_FOUND' });
  });

  it('lists nothing when the file does not exist', async () => {
    expect(await listAuthorizedKeys(join(dir, 'absent'))).toEqual({ keys: [], skipped: [] });
  });
});
