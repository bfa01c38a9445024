/**
 * The jump listener in-process, over a real database (PGlite), with the real OpenSSH client, an access
 * rule that denies one enrolled machine (as grants will) and the stub tunnel router that records which
 * machines a session was opened to. Also the /v1/ssh-keys API and the listener's guards (disabled user,
 * handshake timeout, failed logins per source).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { auditEvents, users } from '@mssh/migrations';
import { PATHS, SshKeyInfo, SshKeysResponse } from '@mssh/protocol';
import { fixtures } from '../../../../e2e/fixtures/inject.js';
import {
  ALICE,
  agentIdentity,
  apiCall,
  apiLogin,
  auditRowsOfType,
  silentLogger,
  startTestRelay,
  type TestRelay,
} from '../test-support.js';
import { relayError } from '../errors.js';
import { LoginGuard } from '../limits/login-guard.js';
import { loadOrCreateJumpHostKey } from './host-key.js';
import { createJumpServer, type JumpServer } from './jump-server.js';
import { createSessionGate } from '../session/gate.js';
import type { MachineFilter } from './seams.js';

function ssh(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('ssh', args, { env: { ...process.env, SSH_AUTH_SOCK: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('SSH jump listener in-process', () => {
  let r: TestRelay;
  let jump: JumpServer;
  let port: number;
  let dir: string;
  let aliceKey: string;
  let aliceToken: string;
  const opened: string[] = [];
  const loginGuard = new LoginGuard({ perSource: 3, perUser: 100 });

  /** Grants as they will be: alice may reach every name but "secret". */
  const access: MachineFilter & { canReach(u: { name: string }, h: string): Promise<boolean> } = {
    canReach: async (u, h) => !(u.name === 'alice' && h === 'secret'),
    filterReachable: async (u, hosts) => hosts.filter((h) => !(u.name === 'alice' && h.name === 'secret')),
  };

  const api = (method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) =>
    apiCall(r, method, url, { token: aliceToken, body });

  /** At LogLevel INFO OpenSSH prints a refused channel's reason (`open failed: ...: CODE: message`). */
  const sshOpts = (key = aliceKey, logLevel = 'ERROR') => [
    '-F',
    '/dev/null',
    '-i',
    key,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    `LogLevel=${logLevel}`,
    '-o',
    `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-p',
    String(port),
  ];

  beforeAll(async () => {
    r = await startTestRelay('pglite');
    dir = mkdtempSync(join(fixtures().root, 'jump-int-'));
    for (const name of ['laptop', 'secret', 'sleeper']) {
      const id = agentIdentity();
      const c = await r.repos.agents.create({
        name,
        publicKey: id.publicKey,
        hostKeys: [id.hostKey],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      });
      expect(c.ok).toBe(true);
      if (name !== 'sleeper') r.router.online.add(name); // sleeper: enrolled, its agent not connected
    }
    r.router.openSession = async (name: string) => {
      opened.push(name);
      throw relayError('RLY_ERR_AGENT_OFFLINE');
    };
    aliceToken = await apiLogin(r, ALICE.name, ALICE.password);
    aliceKey = join(dir, 'alice');
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', aliceKey]);
    const { key } = loadOrCreateJumpHostKey(dir);
    jump = createJumpServer({
      hostKey: key,
      keys: r.services.sshKeys,
      gate: createSessionGate({
        router: r.router,
        hosts: r.services.hosts,
        access,
        ledger: r.recorder,
        audit: r.audit,
        logger: silentLogger(),
      }),
      hosts: r.services.hosts,
      access,
      logger: silentLogger(),
      publicAddress: () => `relay.test:${port}`,
      handshakeTimeoutMs: 500,
      loginGuard,
      onAuthFailure: (e) => r.audit.sshAuthFailed(e),
    });
    port = (await jump.listen('127.0.0.1', 0)).port;
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${key.publicLine}\n`);
  });
  afterAll(async () => {
    await jump?.close();
    await r?.close();
  });

  it('the key API: add (audited), duplicate 409, garbage 400, list, remove 204 then 404', async () => {
    const pub = readFileSync(`${aliceKey}.pub`, 'utf8').trim();
    const add = await api('POST', PATHS.sshKeys, { publicKey: pub });
    expect(add.statusCode, add.body).toBe(201);
    const k = SshKeyInfo.parse(add.json());
    expect(k.publicKey).toBe(pub.split(' ').slice(0, 2).join(' '));
    expect((await api('POST', PATHS.sshKeys, { publicKey: pub })).json().code).toBe('RLY_ERR_NAME_TAKEN');
    expect((await api('POST', PATHS.sshKeys, { publicKey: 'ssh-ed25519 notbase64!' })).json().code).toBe(
      'RLY_ERR_BAD_REQUEST',
    );
    expect((await api('POST', PATHS.sshKeys, { publicKey: 'ssh-dss AAAAB3NzaC1kc3MAAACBAP' })).statusCode).toBe(400);
    expect(SshKeysResponse.parse((await api('GET', PATHS.sshKeys)).json()).keys.map((x) => x.fingerprint)).toEqual([
      k.fingerprint,
    ]);
    await r.audit.flush();
    const rows = await r.database.db.select().from(auditEvents).where(eq(auditEvents.type, 'ssh_key.added'));
    expect(rows.map((x) => x.actor)).toEqual(['alice']);
    expect((await api('DELETE', PATHS.sshKey('SHA256:' + 'A'.repeat(43)))).statusCode).toBe(404);
    expect((await r.app.inject({ method: 'GET', url: PATHS.sshKeys })).statusCode).toBe(401);
  });

  it('the shell lists only the machines alice may reach', async () => {
    const res = await ssh([...sshOpts(), '-T', 'alice@127.0.0.1']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect([...res.stdout.matchAll(/^ {2}(\S+)\s+(online|offline)\r?$/gm)].map((m) => m[1])).toEqual([
      'laptop',
      'sleeper',
    ]);
  });

  it('a machine without a grant is refused before any session is opened; a granted one is opened', async () => {
    opened.length = 0;
    const denied = await ssh([...sshOpts(), '-W', 'secret:22', 'alice@127.0.0.1']);
    expect(denied.code).toBe(255);
    expect(opened).toEqual([]);
    const granted = await ssh([...sshOpts(), '-W', 'laptop:22', 'alice@127.0.0.1']);
    expect(granted.code).toBe(255); // the stub router has no agent link
    expect(opened).toEqual(['laptop']);
  });

  it('each refusal names the guard that refused (code in the channel-open failure), and the gate audits it with the client address', async () => {
    opened.length = 0;
    const before = (await auditRowsOfType(r, 'session.denied')).length;
    const cases: Array<[dest: string, wire: RegExp, audited: { reason: string; code: string } | null]> = [
      [
        'secret:22',
        /open failed: administratively prohibited: RLY_ERR_NO_GRANT: you have no grant for a machine named secret/,
        { reason: 'no_grant', code: 'RLY_ERR_NO_GRANT' },
      ],
      [
        'ghost:22',
        /open failed: administratively prohibited: RLY_ERR_UNKNOWN_HOST: no machine named ghost is enrolled/,
        { reason: 'unknown_host', code: 'RLY_ERR_UNKNOWN_HOST' },
      ],
      [
        'sleeper:22',
        /open failed: connect failed: RLY_ERR_AGENT_OFFLINE: sleeper is enrolled but its agent is not connected/,
        { reason: 'host_offline', code: 'RLY_ERR_AGENT_OFFLINE' },
      ],
      // The destination check, before the gate: an address or another port never reaches a grant or an agent.
      ['127.0.0.1:22', /open failed: administratively prohibited: RLY_ERR_BAD_REQUEST: not a machine name/, null],
      ['laptop:2222', /open failed: administratively prohibited: RLY_ERR_BAD_REQUEST: port 2222/, null],
    ];
    for (const [dest, wire] of cases) {
      const res = await ssh([...sshOpts(aliceKey, 'INFO'), '-W', dest, 'alice@127.0.0.1']);
      expect(res.code, dest).toBe(255);
      expect(res.stdout, dest).toBe('');
      expect(res.stderr, dest).toMatch(wire);
    }
    expect(opened).toEqual([]);
    const rows = (await auditRowsOfType(r, 'session.denied')).slice(before);
    const expected = cases
      .filter(([, , a]) => a !== null)
      .map(([dest, , a]) => ({
        code: 'SES003W',
        actor: 'alice',
        host: dest.split(':')[0],
        source: '127.0.0.1',
        details: { via: 'jump', reason: a!.reason, code: a!.code },
      }));
    expect(rows).toHaveLength(expected.length);
    expected.forEach((e, i) => expect(rows[i]).toMatchObject(e));
  });

  it('a disabled user cannot log in, even with a registered key', async () => {
    await r.database.db.update(users).set({ disabledAt: new Date() }).where(eq(users.name, 'alice'));
    try {
      const res = await ssh([...sshOpts(), '-T', 'alice@127.0.0.1']);
      expect(res.code).toBe(255);
      expect(res.stderr).toMatch(/Permission denied/);
    } finally {
      await r.database.db.update(users).set({ disabledAt: null }).where(eq(users.name, 'alice'));
    }
  });

  it('a connection that never completes the SSH handshake is cut after the timeout', async () => {
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const t0 = Date.now();
      const s = connect(port, '127.0.0.1');
      s.on('data', () => undefined); // the server's version line
      s.on('close', () => resolve(Date.now() - t0));
      s.on('error', () => undefined);
      setTimeout(() => reject(new Error('not closed within 10 s')), 10_000).unref();
    });
    expect(closedAfter).toBeGreaterThanOrEqual(400);
  });

  it('after too many failed logins from one address (the login limiter), its connections are refused with RLY_ERR_RATE_LIMITED', async () => {
    const stranger = join(dir, 'stranger');
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    // The handshake-timeout test above counted one failure for 127.0.0.1 already; at most 3 are free.
    for (let i = 0; i < 3 && loginGuard.refusal('mallory', '127.0.0.1') === null; i++) {
      const res = await ssh([...sshOpts(stranger), '-T', 'alice@127.0.0.1']);
      expect(res.code).toBe(255);
      expect(res.stderr).toMatch(/Permission denied/);
    }
    expect(loginGuard.refusal('mallory', '127.0.0.1')?.code).toBe('RLY_ERR_RATE_LIMITED');
    // Even the right key is not let in now, and the client is told why.
    const res = await ssh([...sshOpts(), '-T', 'alice@127.0.0.1']);
    expect(res.code).toBe(255);
    expect(res.stderr).toMatch(/RLY_ERR_RATE_LIMITED: too many failed logins; try again in \d+ s/);
    expect(res.stderr).not.toMatch(/Permission denied/);
    await r.audit.flush();
    const rows = await r.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.type, 'user.login'), eq(auditEvents.actor, 'alice')));
    expect(rows.map((x) => (x.details as { code?: string }).code).filter(Boolean)).toEqual(['RLY_ERR_RATE_LIMITED']);
  });
});
