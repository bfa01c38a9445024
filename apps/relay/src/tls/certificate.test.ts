import { afterAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { certFingerprint } from '@mssh/protocol';
import { loadOrCreateTls, readFingerprint, tlsPaths } from './certificate.js';
import { CliError } from '../errors.js';

const root = mkdtempSync(join(tmpdir(), 'mssh-tls-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('relay TLS certificate', () => {
  it('creates a self-signed certificate once, with the SANs, private files, and a stable fingerprint', async () => {
    const dataDir = join(root, 'a');
    const first = await loadOrCreateTls({ dataDir, sans: ['relay.example.org', '10.1.2.3'] });
    expect(first.created).toBe(true);
    const p = tlsPaths(dataDir);
    expect(statSync(p.key).mode & 0o777).toBe(0o600);
    expect(statSync(p.dir).mode & 0o777).toBe(0o700);
    const x = new X509Certificate(first.cert);
    expect(first.fingerprint).toBe(certFingerprint(x.raw));
    expect(first.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    for (const n of ['localhost', '127.0.0.1', hostname(), 'relay.example.org', '10.1.2.3'])
      expect(first.names).toContain(n);
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const again = await loadOrCreateTls({ dataDir, sans: ['relay.example.org', 'new.example.org'] });
    expect(again.created).toBe(false);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(again.missingSans).toEqual(['new.example.org']);
    expect(readFingerprint({ dataDir })).toBe(first.fingerprint);
  });

  it('uses the operator certificate, and wants both files', async () => {
    const made = await loadOrCreateTls({ dataDir: join(root, 'b') });
    const ext = await loadOrCreateTls({ dataDir: join(root, 'c'), certFile: made.certPath, keyFile: made.keyPath });
    expect(ext.fingerprint).toBe(made.fingerprint);
    await expect(loadOrCreateTls({ dataDir: join(root, 'c'), certFile: made.certPath })).rejects.toBeInstanceOf(
      CliError,
    );
    const other = await loadOrCreateTls({ dataDir: join(root, 'd') });
    await expect(
      loadOrCreateTls({ dataDir: join(root, 'c'), certFile: made.certPath, keyFile: other.keyPath }),
    ).rejects.toThrow(/does not belong/);
    expect(readFingerprint({ dataDir: join(root, 'nothing') })).toBeNull();
  });
});
