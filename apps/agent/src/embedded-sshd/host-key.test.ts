import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOST_KEY_FILE, loadOrCreateHostKey } from './host-key.js';

const logger = pino({ level: 'silent' });
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-hostkey-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('loadOrCreateHostKey', () => {
  it('creates an ed25519 key once (mode 0600) and returns the same key afterwards', async () => {
    const state = join(dir, 'state');
    const a = await loadOrCreateHostKey(state, logger);
    expect(a.publicLine).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/);
    expect(statSync(join(state, HOST_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(state, `${HOST_KEY_FILE}.pub`), 'utf8').startsWith(a.publicLine)).toBe(true);
    const b = await loadOrCreateHostKey(state, logger);
    expect(b.publicLine).toBe(a.publicLine);
    expect(b.fingerprint).toBe(a.fingerprint);
  });

  it('creates one key when called concurrently', async () => {
    const keys = await Promise.all([1, 2, 3].map(() => loadOrCreateHostKey(dir, logger)));
    expect(new Set(keys.map((k) => k.publicLine)).size).toBe(1);
  });

  it('refuses a corrupt key file with a coded error instead of replacing it', async () => {
    writeFileSync(join(dir, HOST_KEY_FILE), 'garbage', { mode: 0o600 });
    await expect(loadOrCreateHostKey(dir, logger)).rejects.toMatchObject({ code: 'AGT_ERR_SSHD_HOST_KEY' });
    expect(readFileSync(join(dir, HOST_KEY_FILE), 'utf8')).toBe('garbage');
  });
});
