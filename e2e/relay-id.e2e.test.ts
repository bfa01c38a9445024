/**
 * Issue 18 item 5: the relay's id (`<data-dir>/relay-id`) ties the sessions it opened to it, and crash
 * recovery closes only this relay's own open sessions. A damaged id file used to be replaced by a new id
 * silently, after which the sessions of the killed run stayed open for ever. Now only a missing file
 * creates an id: a damaged one refuses the start (RLY_CLI_ERR_RELAY_ID), and once restored the restart
 * closes the killed run's sessions as relay_crashed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type http2 from 'node:http2';
import pg from 'pg';
import { startRelay, startAgent, stopAll, type Relay } from './fixtures/stack.js';
import { adminSession } from './fixtures/tunnel-client.js';
import { startEchoTarget, openSession, exchange, type EchoTarget } from './fixtures/echo-target.js';
import { waitFor } from './fixtures/net.js';
import { fixtures } from './fixtures/inject.js';

describe('a damaged relay id refuses the start instead of orphaning the open sessions', () => {
  let relay: Relay;
  let echo: EchoTarget;
  let h2: http2.ClientHttp2Session;
  let db: pg.Client;

  beforeAll(async () => {
    echo = await startEchoTarget(fixtures().sshd.port, 1000);
    relay = await startRelay('postgres');
    await startAgent(relay, 'echo1', { target: `127.0.0.1:${echo.port}` });
    db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    h2?.close();
    await db?.end();
    await stopAll();
    await echo?.close();
  });

  it('kill -9 with a session open, damaged id: refused with RLY_CLI_ERR_RELAY_ID; restored: the session ends relay_crashed', async () => {
    let token: string;
    ({ h2, token } = await adminSession(relay));
    const { stream, sessionId } = await openSession(h2, token, 'echo1');
    await exchange(stream, 1_000, echo.greeting + 1_000);
    const idFile = join(relay.dataDir, 'relay-id');
    const id = readFileSync(idFile, 'utf8');
    const row = async () =>
      (
        await db.query<{ relay_id: string; ended_at: Date | null; end_reason: string | null }>(
          'SELECT relay_id, ended_at, end_reason FROM sessions WHERE id = $1',
          [sessionId],
        )
      ).rows[0];
    expect(await row()).toMatchObject({ relay_id: id.trim(), ended_at: null });

    await relay.proc.stop('SIGKILL');
    stream.destroy();
    h2.close();
    const serve = () => relay.cli(['serve', '--listen', `127.0.0.1:${relay.port}`, '--ssh-listen', 'off']);

    // Garbage in the file (e.g. a torn write): refused, the file left as it is, the session still open.
    writeFileSync(idFile, 'garbage\n');
    const garbage = await serve();
    expect(garbage.code, garbage.stdout + garbage.stderr).toBe(1);
    expect(garbage.stderr).toContain('RLY_CLI_ERR_RELAY_ID');
    expect(garbage.stderr).toContain(idFile);
    expect(garbage.stdout).not.toMatch(/listening/);
    expect(readFileSync(idFile, 'utf8')).toBe('garbage\n');

    // A file that cannot be read (a directory in its place: EISDIR; root reads through a chmod 000).
    rmSync(idFile);
    mkdirSync(idFile);
    const unreadable = await serve();
    expect(unreadable.code, unreadable.stdout + unreadable.stderr).toBe(1);
    expect(unreadable.stderr).toContain('RLY_CLI_ERR_RELAY_ID');
    expect(unreadable.stderr).toMatch(/EISDIR/);
    expect(statSync(idFile).isDirectory()).toBe(true);
    expect(await row()).toMatchObject({ ended_at: null });

    // Restored as the hint says: the restart closes the killed run's session.
    rmSync(idFile, { recursive: true });
    writeFileSync(idFile, id, { mode: 0o600 });
    await relay.restart();
    const closed = await waitFor(
      async () => {
        const r = await row();
        return r?.ended_at ? r : null;
      },
      20_000,
      'the crash-closed session row',
    );
    expect(closed.end_reason).toBe('relay_crashed');
    expect(readFileSync(idFile, 'utf8')).toBe(id);
  });
});
