import { describe, it, expect } from 'vitest';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import { createTestDatabase } from './fixtures/postgres.js';

describe('shared fixtures', () => {
  it('sshd answers with an SSH banner and accepts the test key', async () => {
    const f = fixtures();
    const banner = await new Promise<string>((resolve, reject) => {
      const c = connect(f.sshd.port, '127.0.0.1');
      c.once('data', (d) => {
        c.destroy();
        resolve(d.toString());
      });
      c.once('error', reject);
    });
    expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    const out = execFileSync('ssh', [
      '-i',
      f.sshd.clientKey,
      '-p',
      String(f.sshd.port),
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'LogLevel=ERROR',
      `${f.sshd.user}@127.0.0.1`,
      'echo',
      'fixture-ok',
    ]).toString();
    expect(out.trim()).toBe('fixture-ok');
  });

  it('a per-file Postgres database has the migrated schema', async () => {
    const url = await createTestDatabase(fixtures().runId);
    const c = new pg.Client(url);
    await c.connect();
    const r = await c.query(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('users','agents','audit_events')`,
    );
    await c.end();
    expect(r.rows[0].n).toBe(3);
  });
});
