import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialsStore } from './credentials-store.js';
import { ensurePrivateDir } from './secure-files.js';
import { normalizeRelayUrl, parseFingerprint } from './relay-url.js';
import { parseConfig } from './config.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'mssh-cfg-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;

describe('config directory and credentials file', () => {
  it('creates the directory 0700 and the credentials file 0600 even with a permissive umask', () => {
    const old = process.umask(0o000);
    try {
      const dir = join(root, 'a', 'mssh');
      ensurePrivateDir(dir);
      const store = new CredentialsStore(dir);
      store.saveLogin({
        url: 'https://r:8443',
        fingerprint: 'SHA256:x',
        token: 't',
        user: 'alice',
        admin: false,
        expiresAt: '2030-01-01T00:00:00Z',
      });
      expect(mode(dir)).toBe(0o700);
      expect(mode(store.path)).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('tightens a directory and a file that were left too open', () => {
    const dir = join(root, 'loose');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const store = new CredentialsStore(dir);
    writeFileSync(store.path, JSON.stringify({ version: 1, current: null, relays: {} }));
    chmodSync(store.path, 0o644);
    ensurePrivateDir(dir);
    expect(store.currentUrl()).toBeNull();
    expect(mode(dir)).toBe(0o700);
    expect(mode(store.path)).toBe(0o600);
  });

  it('keeps one entry per relay; logout clears the token but keeps the pin', () => {
    const store = new CredentialsStore(root);
    store.saveLogin({
      url: 'https://a:8443',
      fingerprint: 'SHA256:a',
      token: 'ta',
      user: 'alice',
      admin: true,
      expiresAt: '2030-01-01T00:00:00Z',
    });
    store.saveLogin({
      url: 'https://b:8443',
      fingerprint: 'SHA256:b',
      token: 'tb',
      user: 'bob',
      admin: false,
      expiresAt: '2030-01-01T00:00:00Z',
    });
    expect(store.currentUrl()).toBe('https://b:8443');
    expect(store.get('https://a:8443')?.token).toBe('ta');
    store.clearToken('https://b:8443');
    expect(store.get('https://b:8443')).toEqual({ url: 'https://b:8443', fingerprint: 'SHA256:b' });
    store.updatePin('https://a:8443', 'SHA256:new');
    expect(store.get('https://a:8443')?.fingerprint).toBe('SHA256:new');
    expect(mode(store.path)).toBe(0o600);
  });

  it('a damaged credentials file is a coded error naming the file', () => {
    const store = new CredentialsStore(root);
    writeFileSync(store.path, '{not json', { mode: 0o600 });
    expect(() => store.currentUrl()).toThrow(expect.objectContaining({ code: 'CLI_ERR_CONFIG' }));
    expect(readFileSync(store.path, 'utf8')).toBe('{not json');
  });

  it('uses MSSH_CONFIG_DIR, else ~/.config/mssh', () => {
    expect(parseConfig({ MSSH_CONFIG_DIR: '/x/y', HOME: '/home/u' }).configDir).toBe('/x/y');
    expect(parseConfig({ HOME: '/home/u' }).configDir).toBe('/home/u/.config/mssh');
    expect(parseConfig({ HOME: '/home/u', SSH_AUTH_SOCK: '' }).agentSocket).toBeNull();
    expect(parseConfig({ HOME: '/home/u', LANG: 'C.UTF-8', LC_ALL: 'C', PATH: '/bin' }).localeEnv).toEqual({
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
    });
  });
});

describe('relay URL and fingerprint', () => {
  it('normalises to https://host:port', () => {
    expect(normalizeRelayUrl('https://relay:8443')).toBe('https://relay:8443');
    expect(normalizeRelayUrl('https://relay:8443/')).toBe('https://relay:8443');
    expect(normalizeRelayUrl('relay.example.com')).toBe('https://relay.example.com:8443');
    expect(normalizeRelayUrl('relay.example.com:9000')).toBe('https://relay.example.com:9000');
    expect(normalizeRelayUrl('https://Relay.Example.com')).toBe('https://relay.example.com:443');
    expect(normalizeRelayUrl('https://[::1]:8443')).toBe('https://[::1]:8443');
  });

  it('refuses what is not a relay URL', () => {
    for (const bad of ['', 'http://relay:8443', 'https://u:p@relay', 'https://relay/path', 'ftp://x']) {
      expect(() => normalizeRelayUrl(bad), bad).toThrow(expect.objectContaining({ code: 'CLI_ERR_BAD_RELAY_URL' }));
    }
  });

  it('accepts only SHA256 fingerprints as printed by mssh-relay info', () => {
    const fp = `SHA256:${'A'.repeat(43)}`;
    expect(parseFingerprint(` ${fp} `)).toBe(fp);
    expect(() => parseFingerprint('SHA256:short')).toThrow(
      expect.objectContaining({ code: 'CLI_ERR_BAD_FINGERPRINT' }),
    );
    expect(() => parseFingerprint('AB:CD:EF')).toThrow(expect.objectContaining({ code: 'CLI_ERR_BAD_FINGERPRINT' }));
  });
});
