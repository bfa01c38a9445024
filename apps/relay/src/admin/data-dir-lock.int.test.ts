/**
 * The data directory's lock (data-dir-lock.ts) against the race that damaged a PGlite database: an admin
 * command run while the relay was starting (database open, admin socket not yet listening) opened the
 * same PGlite from a second process. The "starting relay" here holds the lock as serve does, on its own
 * open file (flock treats it as another holder), with a real PGlite and a real admin socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from '@mssh/test-fixtures/inject';
import { clonePglite } from '@mssh/test-fixtures/pglite';
import { silentLogger, startTestRelay, type TestRelay } from '../test-support.js';
import { prepareDataDir } from '../data-dir.js';
import { serveBusy, tryLockDataDir } from '../data-dir-lock.js';
import { writeDatabaseRecord } from './database-record.js';
import { adminSocketPath, claimAdminSocketPath, startAdminSocket } from './admin-socket.js';
import { NO_RELAY_INFO, adminOps } from './offline-ops.js';

describe('the data directory lock', () => {
  let dataDir: string;
  let r: TestRelay;
  const said: string[] = [];
  const stderr = { write: (s: string) => said.push(s) };

  beforeAll(async () => {
    const f = fixtures();
    dataDir = join(mkdtempSync(join(f.root, 'dir-lock-')), 'data');
    prepareDataDir(dataDir);
    clonePglite(f.pgliteTemplate, join(dataDir, 'db'));
    writeDatabaseRecord(dataDir, { kind: 'pglite' });
    r = await startTestRelay('pglite'); // the relay's services, for its admin socket
  }, 60_000);
  afterAll(async () => {
    await r?.close();
  });

  it('an admin command refuses while a starting relay holds it, without opening the database', async () => {
    const serving = tryLockDataDir(dataDir, 'serve');
    if (serving.held) throw new Error('the lock is held before the test');
    try {
      const t0 = Date.now();
      const err = await adminOps({ dataDir }, NO_RELAY_INFO, stderr, { busyWaitMs: 600 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'RLY_CLI_ERR_DATA_DIR_BUSY' });
      expect((err as Error).message).toContain(`(pid ${process.pid}, serve)`);
      expect((err as Error).message).toContain('the relay is starting or stopping');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500); // it waited for the socket first
      // A second serve refuses at once, naming the holder.
      const second = tryLockDataDir(dataDir, 'serve');
      expect(second).toMatchObject({ held: true, holder: process.pid, what: 'serve' });
      if (second.held) expect(serveBusy(dataDir, second)).toMatchObject({ code: 'RLY_CLI_ERR_DATA_DIR_BUSY' });
    } finally {
      if (!serving.held) serving.release();
    }
  });

  it('an admin command goes through the admin socket once the starting relay answers', async () => {
    const serving = tryLockDataDir(dataDir, 'serve');
    if (serving.held) throw new Error('the lock is held before the test');
    let sock: { close(): Promise<void> } | null = null;
    const listening = (async () => {
      await new Promise((res) => setTimeout(res, 400));
      await claimAdminSocketPath(adminSocketPath(dataDir));
      sock = await startAdminSocket({
        admin: r.services.admin,
        logger: silentLogger(),
        path: adminSocketPath(dataDir),
      });
    })();
    try {
      said.length = 0;
      const ops = await adminOps({ dataDir }, NO_RELAY_INFO, stderr, { busyWaitMs: 8_000 });
      expect(ops.via).toBe('admin-socket');
      expect(said.join('')).toMatch(/^\(relay pid \d+ via admin socket /);
      await ops.createUser({ name: 'lockuser', password: 'lockuser-password', admin: false });
      await ops.close();
      expect(await r.repos.users.findByName('lockuser')).toMatchObject({ isAdmin: false });
    } finally {
      await listening;
      await (sock as { close(): Promise<void> } | null)?.close();
      if (!serving.held) serving.release();
    }
  });

  it('an admin command on the database holds it until closed; a relay cannot start meanwhile', async () => {
    said.length = 0;
    const ops = await adminOps({ dataDir }, NO_RELAY_INFO, stderr, { busyWaitMs: 600 });
    try {
      expect(ops.via).toBe('database');
      expect(tryLockDataDir(dataDir, 'serve')).toMatchObject({ held: true, what: 'admin command' });
    } finally {
      await ops.close();
    }
    const after = tryLockDataDir(dataDir, 'serve');
    expect(after.held).toBe(false);
    if (!after.held) after.release();
  });
});
