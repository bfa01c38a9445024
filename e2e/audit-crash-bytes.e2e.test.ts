/**
 * Issue 16 item 10: after kill -9 of the relay, the crash-closed session row's byte counts are within the
 * documented bound (docs/audit.md, "Progress") of what the session had moved: counters are written once
 * 1 MiB has moved, not only every MSSH_AUDIT_PROGRESS_MS (set to 10 minutes here, so only the byte
 * trigger can have written them). A real session (mssh ssh -> relay -> agent -> sshd) uploads 32 MiB.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import type http2 from 'node:http2';
import pg from 'pg';
import { PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { MiB, runCommand, writeRandomFile } from './fixtures/files.js';
import { waitFor } from './fixtures/net.js';
import { BIN, loginUser, startAgent, startRelay, stopAll, type Relay, type User } from './fixtures/stack.js';
import { adminSession, request } from './fixtures/tunnel-client.js';

afterAll(stopAll);

/** The bound docs/audit.md gives: 1 MiB, plus what moves in the 20 ms between writes and during one write (allowed 230 ms here). */
const boundFor = (bytesPerSecond: number) => MiB + bytesPerSecond * 0.25;

describe('byte counters survive kill -9 within the documented bound', () => {
  let relay: Relay;
  let admin: User;
  let h2: http2.ClientHttp2Session;
  let token: string;

  beforeAll(async () => {
    relay = await startRelay('postgres', [], { env: { MSSH_AUDIT_PROGRESS_MS: '600000' } });
    await startAgent(relay, 'laptop');
    admin = await loginUser(relay);
    ({ h2, token } = await adminSession(relay));
  }, 120_000);
  afterAll(() => h2?.close());

  it('a session that moved 32 MiB is closed as relay_crashed with its bytes within the bound', async () => {
    const f = fixtures();
    const N = 32 * MiB;
    const big = join(mkdtempSync(join(f.root, 'crash-bytes-')), 'big');
    writeRandomFile(big, N);
    // Upload N bytes, then keep the session open (the remote side sleeps).
    const client = runCommand(
      process.execPath,
      [BIN.mssh, 'ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@laptop`, '--', 'cat > /dev/null; sleep 60'],
      { env: admin.env, stdinFile: big, timeoutMs: 120_000 },
    );
    let firstAt = 0;
    const live = await waitFor(
      async () => {
        const r = await request(h2, 'GET', `${PATHS.adminSessions}?active=true`, { token });
        const s = (r.body.sessions as Array<{ sessionId: string; host: string; bytesFromClient: number }>).find(
          (x) => x.host === 'laptop',
        );
        if (s && s.bytesFromClient > 0 && !firstAt) firstAt = performance.now();
        return s && s.bytesFromClient >= N ? s : null;
      },
      90_000,
      'the upload through the relay',
      10,
    );
    relay.proc.child.kill('SIGKILL');
    await relay.proc.exited;
    const seconds = Math.max(0.05, (performance.now() - firstAt) / 1000);
    const rate = live.bytesFromClient / seconds;
    await client;
    await relay.restart();

    const db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
    try {
      const row = await waitFor(
        async () =>
          (
            await db.query<{ bytes_up: string; end_reason: string | null }>(
              'SELECT bytes_up, end_reason FROM sessions WHERE id = $1 AND ended_at IS NOT NULL',
              [live.sessionId],
            )
          ).rows[0] ?? null,
        20_000,
        'the crash-closed row',
      );
      expect(row.end_reason).toBe('relay_crashed');
      const recorded = Number(row.bytes_up);
      const lost = live.bytesFromClient - recorded;
      const bound = boundFor(rate);
      process.stdout.write(
        `crash-bytes: moved ${live.bytesFromClient} at ${(rate / MiB).toFixed(1)} MiB/s, recorded ${recorded}, lost ${lost}, bound ${bound.toFixed(0)}\n`,
      );
      expect(
        lost,
        `moved ${live.bytesFromClient} at ${(rate / MiB).toFixed(1)} MiB/s, recorded ${recorded}, bound ${bound.toFixed(0)}`,
      ).toBeLessThanOrEqual(bound);
      expect(recorded).toBeLessThanOrEqual(live.bytesFromClient + MiB);
      const end = (
        await db.query<{ details: Record<string, unknown> }>(
          `SELECT details FROM audit_events WHERE type = 'session.end' AND session_id = $1`,
          [live.sessionId],
        )
      ).rows[0]!;
      expect(end.details).toMatchObject({ reason: 'relay_crashed', bytesFromClient: recorded });
    } finally {
      await db.end();
    }
  }, 180_000);
});
