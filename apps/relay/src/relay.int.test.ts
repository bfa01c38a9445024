/**
 * The relay component (relay.ts): one stop order, the same after a signal and after a failed start.
 * Real Postgres, real listeners on loopback.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { auditEvents } from '@mssh/migrations';
import { CliError } from '@mssh/cli-kit';
import { fixtures } from '../../../e2e/fixtures/inject.js';
import { createTestDatabase } from '../../../e2e/fixtures/postgres.js';
import { ServeConfigSchema, parseConfig } from './config.js';
import { readRelayId } from './data-dir.js';
import { openDatabase } from './db/index.js';
import { createRelay, STOP_STEPS, type StopStep } from './relay.js';
import { listenErrorReason } from '@mssh/cli-kit';
import { silentLogger } from './test-support.js';

/** Resolves with the error code of a TCP connect, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** GET /readyz over HTTPS/1.1 (as a balancer's health check asks). */
function readyz(port: number): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/readyz', method: 'GET', rejectUnauthorized: false, agent: false },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of closers) await c();
});

async function serveConfig(extra: Record<string, unknown> = {}) {
  const dataDir = mkdtempSync(join(fixtures().root, 'relay-component-'));
  const databaseUrl = await createTestDatabase(fixtures().runId);
  return {
    databaseUrl,
    cfg: parseConfig(
      ServeConfigSchema,
      { listen: '127.0.0.1:0', sshListen: '127.0.0.1:0', dataDir, databaseUrl, ...extra },
      {},
    ),
  };
}

describe('relay component', () => {
  it(
    'stop: listeners closed (with the jump listener connections) before the audit flush; the database last',
    { timeout: 60_000 },
    async () => {
      const { cfg, databaseUrl } = await serveConfig();
      const steps: StopStep[] = [];
      const seen: Record<string, unknown> = {};
      let ports: { https: number; ssh: number | null } | null = null;
      const lines: string[] = [];
      const check = await openDatabase({ databaseUrl });
      closers.push(() => check.close());
      const stoppedRows = () =>
        check.db
          .select()
          .from(auditEvents)
          .where(and(eq(auditEvents.type, 'relay.stopped'), eq(auditEvents.relayId, readRelayId(cfg.dataDir)!)));
      const relay = createRelay({
        cfg,
        logger: silentLogger(),
        out: (l) => lines.push(l),
        onStopStep: async (step) => {
          steps.push(step);
          if (step === 'agent links') seen.httpsAfterListeners = await tryConnect(ports!.https);
          if (step === 'agent links') seen.sshAfterListeners = await tryConnect(ports!.ssh!);
          if (step === 'database') seen.stoppedRowsBeforeDbClose = (await stoppedRows()).length;
        },
      });
      await relay.start();
      ports = relay.ports;
      expect(lines[0]).toBe(`mssh-relay listening on https://127.0.0.1:${ports!.https}`);
      expect(ports!.ssh).toBeGreaterThan(0);

      // A live SSH connection on the jump listener (banner received): stop must end it.
      const ssh: Socket = connect({ host: '127.0.0.1', port: ports!.ssh! });
      await new Promise<void>((resolve, reject) => {
        ssh.once('data', () => resolve());
        ssh.once('error', reject);
      });
      const sshClosed = new Promise<void>((resolve) => ssh.once('close', () => resolve()));

      await relay.stop('SIGTERM');
      expect(steps).toEqual([...STOP_STEPS]);
      // After drain the HTTPS listener refuses or resets new connections (fastify finishes its close later);
      // the SSH listener is gone.
      expect(seen.httpsAfterListeners).not.toBe('connected');
      expect(seen.sshAfterListeners).toBe('ECONNREFUSED');
      expect(await tryConnect(ports!.https)).toBe('ECONNREFUSED');
      await sshClosed;
      // relay.stopped was written before the database closed.
      expect(seen.stoppedRowsBeforeDbClose).toBe(1);
      // Called again: the same stop, nothing runs twice.
      await relay.stop('SIGTERM');
      expect(steps).toEqual([...STOP_STEPS]);
    },
  );

  it(
    'a failed start stops in the same order, skipping what never started, and writes no relay.stopped',
    { timeout: 60_000 },
    async () => {
      const taken: Server = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      closers.push(() => new Promise((resolve) => taken.close(() => resolve())));
      const port = (taken.address() as { port: number }).port;
      const { cfg, databaseUrl } = await serveConfig({ listen: `127.0.0.1:${port}` });
      const steps: StopStep[] = [];
      const relay = createRelay({
        cfg,
        logger: silentLogger(),
        out: () => undefined,
        onStopStep: (s) => void steps.push(s),
      });
      const err = await relay.start().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).code).toBe('RLY_CLI_ERR_LISTEN');
      expect((err as CliError).message).toBe(`cannot listen on 127.0.0.1:${port}: the address is already in use`);
      await relay.stop('start failed');
      expect(steps).toEqual([...STOP_STEPS]);
      const check = await openDatabase({ databaseUrl });
      closers.push(() => check.close());
      const rows = await check.db
        .select()
        .from(auditEvents)
        .where(eq(auditEvents.relayId, readRelayId(cfg.dataDir)!));
      expect(rows.map((r) => r.type)).not.toContain('relay.stopped');
      expect(rows.map((r) => r.type)).not.toContain('relay.started');
    },
  );

  it(
    'shutdown (the drain of SIGTERM): /readyz 503 at once, listeners open for --drain-delay then closed while open connections go on, relay.draining then relay.stopped',
    { timeout: 60_000 },
    async () => {
      const { cfg, databaseUrl } = await serveConfig({ drainDelay: '1', drainTimeout: '5' });
      const steps: StopStep[] = [];
      const relay = createRelay({
        cfg,
        logger: silentLogger(),
        out: () => undefined,
        onStopStep: (s) => void steps.push(s),
      });
      expect(relay.state).toBe('new');
      await relay.start();
      expect(relay.state).toBe('serving');
      const ports = relay.ports!;
      expect(await readyz(ports.https)).toEqual({ status: 200, body: { status: 'serving' } });
      // A jump connection open before the drain: it outlives the listeners, until the stop.
      const ssh: Socket = connect({ host: '127.0.0.1', port: ports.ssh! });
      await new Promise<void>((resolve, reject) => {
        ssh.once('data', () => resolve());
        ssh.once('error', reject);
      });
      let sshClosedAt = 0;
      ssh.once('close', () => (sshClosedAt = Date.now()));

      const t0 = Date.now();
      const done = relay.shutdown('SIGTERM');
      expect(relay.state).toBe('draining');
      expect(relay.shutdown('SIGTERM')).toBe(done);
      const r = await readyz(ports.https);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ status: 'draining', code: 'RLY_ERR_DRAINING' });
      expect(await tryConnect(ports.https)).toBe('connected'); // within --drain-delay
      await new Promise((res) => setTimeout(res, 1_300));
      expect(await tryConnect(ports.https)).toBe('ECONNREFUSED');
      expect(await tryConnect(ports.ssh!)).toBe('ECONNREFUSED');
      await done;
      await relay.stopped;
      expect(steps).toEqual([...STOP_STEPS]);
      // No session was running: the stop came right after the listeners closed, and ended the jump connection.
      expect(sshClosedAt).toBeGreaterThan(0);
      expect(Date.now() - t0).toBeLessThan(4_000);
      const check = await openDatabase({ databaseUrl });
      closers.push(() => check.close());
      const rows = await check.db
        .select()
        .from(auditEvents)
        .where(eq(auditEvents.relayId, readRelayId(cfg.dataDir)!));
      const types = rows.map((x) => x.type);
      expect(types.indexOf('relay.draining')).toBeGreaterThan(types.indexOf('relay.started'));
      expect(types.indexOf('relay.stopped')).toBeGreaterThan(types.indexOf('relay.draining'));
      expect(rows.find((x) => x.type === 'relay.draining')?.details).toMatchObject({
        reason: 'SIGTERM',
        sessions: 0,
        agents: 0,
        delayMs: 1000,
        timeoutMs: 5000,
      });
      expect(rows.find((x) => x.type === 'relay.stopped')?.details).toMatchObject({
        signal: 'SIGTERM',
        sessionsEnded: 0,
      });
    },
  );

  it('stop() during a drain (a second SIGTERM) cuts the drain short', { timeout: 60_000 }, async () => {
    const { cfg } = await serveConfig({ drainDelay: '30', drainTimeout: '60' });
    const relay = createRelay({ cfg, logger: silentLogger(), out: () => undefined });
    await relay.start();
    const t0 = Date.now();
    const draining = relay.shutdown('SIGTERM');
    await new Promise((res) => setTimeout(res, 200));
    await relay.stop('SIGTERM');
    await draining;
    expect(relay.state).toBe('stopping');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('says why a listener failed the same way for both listeners', () => {
    expect(listenErrorReason(Object.assign(new Error('x'), { code: 'EADDRINUSE' }))).toBe(
      'the address is already in use',
    );
    expect(listenErrorReason(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('permission denied');
    expect(listenErrorReason(new Error('something else'))).toBe('something else');
  });
});
