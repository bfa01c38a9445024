/**
 * Issue 16 item 4: audit gaps, through the built relay (Postgres), mssh-agent and stock OpenSSH.
 *
 * - a login whose user name carries NUL (or another control character) is 400 RLY_ERR_BAD_REQUEST, without
 *   internals in the body, audited as user.login USR001W reason invalid_name, and the relay keeps serving;
 *   a control character in a path parameter is refused the same way;
 * - refused enrolments (name mismatch, reused token) are audited as agent.enroll_failed AGT001W;
 * - a refused SSH login on the jump listener is audited as user.login USR001W with details.via jump, and a
 *   jump session.denied carries the client's address; a flood of refused SSH logins from one address
 *   writes at most FAILURE_SAMPLING.perSource (10) rows per minute.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type http2 from 'node:http2';
import pg from 'pg';
import { PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { runCommand } from './fixtures/files.js';
import { sshKeygen, writeSshConfig } from './fixtures/openssh.js';
import { freePort, waitFor } from './fixtures/net.js';
import {
  ADMIN_PASSWORD,
  enrollToken,
  agentEnroll,
  loginUser,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
} from './fixtures/stack.js';
import { relaySession, request } from './fixtures/tunnel-client.js';

afterAll(stopAll);

interface Row {
  type: string;
  code: string;
  actor: string | null;
  host: string | null;
  source: string | null;
  details: Record<string, unknown>;
}

describe('audit gaps (issue 16 item 4)', () => {
  let relay: Relay;
  let db: pg.Client;
  let h2: http2.ClientHttp2Session;
  let sshPort: number;
  let dir: string;

  const rows = async (where: string, params: unknown[] = []): Promise<Row[]> =>
    (
      await db.query<Row>(
        `SELECT type, code, actor, host, source, details FROM audit_events WHERE ${where} ORDER BY id`,
        params,
      )
    ).rows;

  const keygen = (name: string): string => sshKeygen(dir, name);

  const sshConfig = (name: string, key: string): string =>
    writeSshConfig(dir, name, [
      ['127.0.0.1', key],
      ['vault', fixtures().sshd.clientKey],
    ]);
  const ssh = (config: string, args: string[]) =>
    runCommand('ssh', ['-F', config, ...args], { env: { ...process.env, SSH_AUTH_SOCK: '' }, timeoutMs: 30_000 });

  beforeAll(async () => {
    sshPort = await freePort();
    relay = await startRelay('postgres', ['--ssh-listen', `127.0.0.1:${sshPort}`]);
    await relay.proc.waitOutput(/SSH host key fingerprint: (SHA256:\S+)/, 5_000, 'out');
    db = new pg.Client({ connectionString: relay.databaseUrl });
    await db.connect();
    h2 = await relaySession(relay);
    dir = mkdtempSync(join(fixtures().root, 'audit-gaps-'));
    const relayKey = readFileSync(join(relay.dataDir, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${sshPort} ${relayKey}\n`);
  }, 120_000);
  afterAll(async () => {
    h2?.close();
    await db?.end();
  });

  it('a NUL in the login name is 400 RLY_ERR_BAD_REQUEST without internals, audited, and the relay keeps serving', async () => {
    const r = await request(h2, 'POST', PATHS.login, { body: { user: 'admin\u0000', password: 'whatever-password' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ statusCode: 400, code: 'RLY_ERR_BAD_REQUEST', error: 'Bad Request' });
    expect(JSON.stringify(r.body)).not.toMatch(/stack|\bat \S+ \(|\.js:\d+|\.ts:\d+|invalid byte sequence/);
    const esc = await request(h2, 'POST', PATHS.login, {
      body: { user: 'adm\u001b[2Jin', password: 'whatever-password' },
    });
    expect(esc.body).toMatchObject({
      code: 'RLY_ERR_BAD_REQUEST',
      message: 'body.user contains control characters; names never do',
    });
    const audited = await waitFor(
      async () => {
        const x = await rows(`type = 'user.login' AND details->>'reason' = 'invalid_name'`);
        return x.length >= 2 ? x : null;
      },
      10_000,
      'user.login invalid_name rows',
    );
    expect(audited[0]).toMatchObject({
      type: 'user.login',
      code: 'USR001W',
      actor: 'admin\\u0000',
      source: '127.0.0.1',
      details: { success: false, code: 'RLY_ERR_BAD_REQUEST' },
    });
    expect(audited[1]!.actor).toBe('adm\\u001b[2Jin');
    // Still serving: a real login works and a control character in a path parameter is refused too.
    const ok = await request(h2, 'POST', PATHS.login, { body: { user: 'admin', password: ADMIN_PASSWORD } });
    expect(ok.status).toBe(200);
    const host = await request(h2, 'GET', `${PATHS.hosts}/lap%00top`, { token: ok.body.token });
    expect(host.status).toBe(400);
    expect(host.body.code).toBe('RLY_ERR_BAD_REQUEST');
  });

  it('refused enrolments (name mismatch, reused token) are audited as agent.enroll_failed with code and source', async () => {
    const token = await enrollToken(relay, 'box1');
    const enroll = (name: string) => agentEnroll(relay, name, token, mkdtempSync(join(dir, `agent-${name}-`)));
    const wrong = await enroll('box2');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toMatch(/RLY_ERR_ENROLL_NAME_MISMATCH|issued for/);
    const right = await enroll('box1');
    expect(right.code, right.stderr).toBe(0);
    const reused = await enroll('box1');
    expect(reused.code).not.toBe(0);
    const audited = await waitFor(
      async () => {
        const x = await rows(`type = 'agent.enroll_failed'`);
        return x.length >= 2 ? x : null;
      },
      10_000,
      'agent.enroll_failed rows',
    );
    expect(audited[0]).toMatchObject({
      code: 'AGT001W',
      host: 'box2',
      source: '127.0.0.1',
      details: { code: 'RLY_ERR_ENROLL_NAME_MISMATCH' },
    });
    expect(audited[1]).toMatchObject({
      code: 'AGT001W',
      host: 'box1',
      source: '127.0.0.1',
      details: { code: 'RLY_ERR_ENROLL_TOKEN_INVALID' },
    });
  });

  it('a jump session.denied carries the client address', async () => {
    await startAgent(relay, 'vault'); // online; carol has no grant for it
    const add = await relay.cli(['user', 'add', 'carol', '--password-stdin'], 'carol-password-1\n');
    expect(add.code, add.stderr).toBe(0);
    const carol = await loginUser(relay, 'carol', 'carol-password-1');
    const key = keygen('carol_ed25519');
    const k = await carol.mssh(['keys', 'add', `${key}.pub`]);
    expect(k.code, k.stderr).toBe(0);
    const r = await ssh(sshConfig('carol_config', key), [
      '-J',
      `carol@127.0.0.1:${sshPort}`,
      `${fixtures().sshd.user}@vault`,
      '--',
      'true',
    ]);
    expect(r.code).toBe(255);
    const denied = await waitFor(
      async () => (await rows(`type = 'session.denied' AND actor = 'carol'`))[0] ?? null,
      10_000,
      'session.denied',
    );
    expect(denied).toMatchObject({
      code: 'SES003W',
      host: 'vault',
      source: '127.0.0.1',
      details: { reason: 'no_grant', via: 'jump' },
    });
  });

  it('refused SSH logins on the jump listener are audited (via jump), at most 10 rows per address and minute', async () => {
    const key = keygen('stranger_ed25519'); // registered by nobody
    const config = sshConfig('stranger_config', key);
    const first = await ssh(config, ['-p', String(sshPort), 'mallory@127.0.0.1']);
    expect(first.code).toBe(255);
    expect(first.stderr).toMatch(/Permission denied \(publickey\)/);
    const row = await waitFor(
      async () => (await rows(`type = 'user.login' AND details->>'via' = 'jump'`))[0] ?? null,
      10_000,
      'jump user.login failure',
    );
    expect(row).toMatchObject({
      code: 'USR001W',
      actor: 'mallory',
      source: '127.0.0.1',
      details: { success: false, via: 'jump' },
    });
    expect(String(row.details.reason)).toMatch(/key not registered/);
    const fp = execFileSync('/usr/bin/ssh-keygen', ['-l', '-f', `${key}.pub`])
      .toString()
      .split(/\s+/)[1];
    expect(row.details.keys).toEqual([fp]);
    // 13 more refused connections (the listener blocks an address at 20): rows stop at 10 for the minute.
    for (let i = 0; i < 13; i++)
      expect((await ssh(config, ['-p', String(sshPort), `mallory${i}@127.0.0.1`])).code).toBe(255);
    // Witness: a refusal from another address, audited after those (the audit writer keeps order): once
    // its row is there, every row the 13 above could have made is there too.
    expect((await ssh(config, ['-b', '127.0.0.2', '-p', String(sshPort), 'witness@127.0.0.1'])).code).toBe(255);
    await waitFor(
      async () => (await rows(`type = 'user.login' AND details->>'via' = 'jump' AND source = '127.0.0.2'`))[0] ?? null,
      10_000,
      'the witness row from 127.0.0.2',
    );
    await waitFor(
      async () => ((await rows(`type = 'user.login' AND details->>'via' = 'jump'`)).length >= 10 ? true : null),
      10_000,
      `10 rows (have ${(await rows(`type = 'user.login' AND details->>'via' = 'jump'`)).length}; relay log: ${relay.proc.err
        .split('\n')
        .filter((l) => /ssh/.test(l))
        .slice(-6)
        .join('\n')})`,
    );
    expect((await rows(`type = 'user.login' AND details->>'via' = 'jump' AND source = '127.0.0.1'`)).length).toBe(10);
  });
});
