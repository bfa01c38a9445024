/**
 * Shared pieces for the relay's own tests: a real database of either kind (PGlite clone or a fresh
 * Postgres database from the run's template), a stub tunnel router (the real one is tested in tunnel/),
 * and the relay's fastify instance over them. Not used by the program itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { expect } from 'vitest';
import { eq } from 'drizzle-orm';
import { auditEvents } from '@mssh/migrations';
import { LoginResponse, PATHS } from '@mssh/protocol';
import type { FastifyInstance } from 'fastify';
import { hashPassword, type TokenService } from '@mssh/auth';
import { fixtures } from '@mssh/test-fixtures/inject';
import { clonePglite } from '@mssh/test-fixtures/pglite';
import { createTestDatabase } from '@mssh/test-fixtures/postgres';
import { openDatabase, createRepositories, type Database, type Repositories } from './db/index.js';
import { DbAuditSink } from './audit/audit-sink.js';
import { SessionRecorder } from './audit/session-recorder.js';
import { loadTokenService } from './auth/token-keys.js';
import { createServices, type RelayServices } from './services.js';
import { buildServer } from './http/server.js';
import { loadOrCreateTls, type RelayTls } from './tls/certificate.js';
import { relayError } from './errors.js';
import { createSessionGate, type SessionGate } from './session/gate.js';
import type { TunnelRouter } from './tunnel/types.js';

export type DbKind = 'pglite' | 'postgres';
export const DB_KINDS: DbKind[] = ['pglite', 'postgres'];

export const silentLogger = () => pino({ level: 'silent' });

/** A migrated database of the given kind, private to the caller. */
export async function openTestDatabase(kind: DbKind): Promise<{ database: Database; cleanup: () => Promise<void> }> {
  const f = fixtures();
  if (kind === 'pglite') {
    const dir = mkdtempSync(join(f.root, 'relay-unit-'));
    clonePglite(f.pgliteTemplate, join(dir, 'db'));
    const database = await openDatabase({ pgliteDir: join(dir, 'db') });
    return {
      database,
      cleanup: async () => {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const database = await openDatabase({ databaseUrl: await createTestDatabase(f.runId) });
  return { database, cleanup: () => database.close() };
}

/** A tunnel router with no tunnels: online-ness is whatever the test says. */
export function stubRouter(): TunnelRouter & {
  online: Set<string>;
  sessions: number;
  acceptedSockets: number;
  closed: Array<{ kind: 'user' | 'agent'; name: string; reason: string }>;
} {
  const online = new Set<string>();
  const r = {
    online,
    sessions: 0,
    acceptedSockets: 0,
    acceptAgentSocket(socket: import('node:tls').TLSSocket) {
      r.acceptedSockets++;
      socket.end('agent-link-stub\n');
    },
    isOnline: (name: string) => online.has(name),
    onlineNames: () => [...online],
    activeSessions: () => r.sessions,
    openSession: async () => {
      throw relayError('RLY_ERR_AGENT_OFFLINE');
    },
    spliceSession: async () => {
      throw new Error('stub router does not splice');
    },
    closed: [] as Array<{ kind: 'user' | 'agent'; name: string; reason: string }>,
    closeSessionsOfUser: (user: string, reason: string) => {
      r.closed.push({ kind: 'user', name: user, reason });
      return 0;
    },
    closeAgent: (name: string, reason: string) => {
      r.closed.push({ kind: 'agent', name, reason });
      online.delete(name);
      return false;
    },
    close: async () => {},
  };
  return r as unknown as TunnelRouter & {
    online: Set<string>;
    sessions: number;
    acceptedSockets: number;
    closed: Array<{ kind: 'user' | 'agent'; name: string; reason: string }>;
  };
}

export const ADMIN = { name: 'admin', password: 'admin-password-1' };
export const ALICE = { name: 'alice', password: 'alice-password-1' };

export interface TestRelay {
  app: FastifyInstance;
  database: Database;
  repos: Repositories;
  tokens: TokenService;
  audit: DbAuditSink;
  recorder: SessionRecorder;
  router: ReturnType<typeof stubRouter>;
  services: RelayServices;
  /** The session gate the tunnel route uses (the jump listener of a test can share it). */
  gate: SessionGate;
  tls: RelayTls;
  tmp: string;
  close(): Promise<void>;
}

/** The relay API over a real database, with `admin` (admin) and `alice` (not admin). */
export async function startTestRelay(kind: DbKind): Promise<TestRelay> {
  const { database, cleanup } = await openTestDatabase(kind);
  const tmp = mkdtempSync(join(fixtures().root, 'relay-tls-'));
  const tls = await loadOrCreateTls({ dataDir: tmp });
  const repos = createRepositories(database.db);
  const logger = silentLogger();
  const audit = new DbAuditSink({ db: database.db, relayId: 'test-relay', logger });
  const { tokens } = await loadTokenService(repos.signingKeys);
  await repos.users.create({ name: ADMIN.name, passwordHash: await hashPassword(ADMIN.password), isAdmin: true });
  await repos.users.create({ name: ALICE.name, passwordHash: await hashPassword(ALICE.password), isAdmin: false });
  const router = stubRouter();
  const relay = { url: 'https://relay.test:8443', fingerprint: tls.fingerprint };
  const recorder = new SessionRecorder({ db: database.db, writer: audit.writer, relayId: 'test-relay', logger });
  const services = createServices({
    repos,
    tokens,
    audit,
    router,
    relay: () => relay,
    relayId: 'test-relay',
    liveSessions: () => recorder.active(),
  });
  const gate = createSessionGate({
    router,
    hosts: services.hosts,
    access: services.access,
    ledger: recorder,
    audit,
    logger,
  });
  const app = buildServer({ tls, logger, router, tokens, ...services, gate, audit, closeGraceMs: 200 });
  await app.ready();
  return {
    app,
    database,
    repos,
    tokens,
    audit,
    recorder,
    router,
    services,
    gate,
    tls,
    tmp,
    async close() {
      await app.close();
      await recorder.close();
      await audit.flush();
      audit.writer.close();
      await cleanup();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** A fresh agent identity: Ed25519 SPKI DER base64, and an OpenSSH host key line. */
export function agentIdentity(): { publicKey: string; hostKey: string } {
  const id = generateKeyPairSync('ed25519');
  const publicKey = id.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const host = generateKeyPairSync('ed25519');
  const raw = host.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const sshString = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(raw)]);
  return { publicKey, hostKey: `ssh-ed25519 ${blob.toString('base64')}` };
}

/** A request to the test relay's API through fastify's inject(), with an optional bearer token and JSON body. */
export function apiCall(
  r: TestRelay,
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  return r.app.inject({
    method,
    url,
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    ...(opts.body !== undefined ? { payload: opts.body as object } : {}),
  });
}

/** Log in through the API (expects 200) and return the token. */
export async function apiLogin(r: TestRelay, user: string, password: string): Promise<string> {
  const res = await apiCall(r, 'POST', PATHS.login, { body: { user, password } });
  expect(res.statusCode, res.body).toBe(200);
  return LoginResponse.parse(res.json()).token;
}

/** The audit rows of one type, once every pending write has landed. */
export async function auditRowsOfType(r: TestRelay, type: string) {
  await r.audit.flush();
  return r.database.db.select().from(auditEvents).where(eq(auditEvents.type, type));
}
