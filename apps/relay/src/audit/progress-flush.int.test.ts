/**
 * Issue 16 item 10: live byte counters are written once 1 MiB has moved (or 1 s after bytes moved), not
 * only every 10 s, through the audit writer's group commit; nothing is written while nothing moves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { sessions } from '@mssh/migrations';
import { DB_KINDS, openTestDatabase, silentLogger } from '../test-support.js';
import { AuditWriter } from './audit-writer.js';
import { SessionRecorder } from './session-recorder.js';

const MiB = 1024 * 1024;

async function until<T>(fn: () => Promise<T | null>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const v = await fn();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(DB_KINDS)('byte counters of live sessions on %s', (kind) => {
  let t: Awaited<ReturnType<typeof openTestDatabase>>;
  let writer: AuditWriter;
  let rec: SessionRecorder;
  let slow: SessionRecorder;
  beforeAll(async () => {
    t = await openTestDatabase(kind);
    writer = new AuditWriter({ db: t.database.db, logger: silentLogger() });
    // The periodic write is an hour away and the time trigger a minute: only the byte trigger can write.
    rec = new SessionRecorder({
      db: t.database.db,
      writer,
      relayId: 'r-progress',
      logger: silentLogger(),
      progressIntervalMs: 3_600_000,
      flushIntervalMs: 60_000,
    });
    rec.startProgress();
    // ... and here only the 1 s trigger.
    slow = new SessionRecorder({
      db: t.database.db,
      writer,
      relayId: 'r-progress-2',
      logger: silentLogger(),
      progressIntervalMs: 3_600_000,
      flushBytes: 2 ** 40,
    });
    slow.startProgress();
  });
  afterAll(async () => {
    await rec?.close();
    await slow?.close();
    writer?.close();
    await t?.cleanup();
  });

  const row = async (id: string) => (await t.database.db.select().from(sessions).where(eq(sessions.id, id)))[0]!;

  it('1 MiB moved is written without waiting for the periodic or the 1 s write, batched', async () => {
    const s = await rec.start({
      sessionId: `pf-${kind}`,
      user: 'alice',
      host: 'laptop',
      source: '127.0.0.1',
      via: 'https',
    });
    const up = 0;
    let down = 0;
    s.attachCounters(() => ({ bytesFromClient: up, bytesToClient: down }));
    const batchesBefore = writer.batches;
    // 3 MiB in 64 KiB chunks, as the data path reports them.
    for (let i = 0; i < 48; i++) {
      down += 65_536;
      s.noteBytes!(65_536);
    }
    const written = await until(
      async () => {
        const r = await row(`pf-${kind}`);
        return r.bytesDown >= 2 * MiB ? r : null;
      },
      10_000,
      'the byte-triggered write',
    );
    expect(written.endedAt).toBeNull();
    // Batched: a few writes for 48 chunks, not one per chunk.
    expect(writer.batches - batchesBefore).toBeLessThanOrEqual(3);
    s.end({ reason: 'client_closed' });
    await writer.drain();
    expect(await row(`pf-${kind}`)).toMatchObject({ bytesUp: 0, bytesDown: 3 * MiB, endReason: 'client_closed' });
  });

  it('a trickle below 1 MiB is written within about a second; nothing is written while nothing moves', async () => {
    const s = await slow.start({
      sessionId: `pt-${kind}`,
      user: 'alice',
      host: 'laptop',
      source: '127.0.0.1',
      via: 'https',
    });
    let up = 0;
    s.attachCounters(() => ({ bytesFromClient: up, bytesToClient: 0 }));
    up = 500;
    s.noteBytes!(500);
    const r = await until(
      async () => {
        const x = await row(`pt-${kind}`);
        return x.bytesUp === 500 ? x : null;
      },
      10_000,
      'the 1 s write',
    );
    expect(r.progressAt).not.toBeNull();
    // A witness session that moves bytes now: once its counters are written, a 1 s tick has run since
    // the quiet session's write, and that tick wrote the witness alone (one batch, the quiet row as it was).
    const w = await slow.start({
      sessionId: `pt-witness-${kind}`,
      user: 'alice',
      host: 'laptop',
      source: '127.0.0.1',
      via: 'https',
    });
    let wUp = 0;
    w.attachCounters(() => ({ bytesFromClient: wUp, bytesToClient: 0 }));
    const quiet = writer.batches;
    wUp = 700;
    w.noteBytes!(700);
    await until(
      async () => ((await row(`pt-witness-${kind}`)).bytesUp === 700 ? true : null),
      10_000,
      'the witness write',
    );
    expect(writer.batches - quiet).toBe(1);
    expect((await row(`pt-${kind}`)).progressAt).toEqual(r.progressAt);
    s.end({ reason: 'client_closed' });
    w.end({ reason: 'client_closed' });
    await writer.drain();
  });
});
