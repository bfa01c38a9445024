/**
 * Issue 3 (access): grants decide what `mssh ls` shows and what `mssh ssh` reaches; disabling a user,
 * logging out and revoking an agent take effect at once. Real relay, agents, sshd, Postgres and PGlite,
 * driven through the built programs (`mssh`, `mssh-relay` through its admin socket, `mssh-agent`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  BIN,
  loginUser,
  run,
  sshArgs,
  startAgent,
  startRelay,
  stopAll,
  type Agent,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { login as apiLogin, openTunnel, relaySession, request } from './fixtures/tunnel-client.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

const hostsOf = async (u: User): Promise<string[]> => {
  const r = await u.mssh(['ls', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ name: string }>).map((h) => h.name).sort();
};

const tunnelError = async (
  relay: Relay,
  token: string,
  host: string,
): Promise<{ status: number; body: { code: string; message: string } }> => {
  const s = await relaySession(relay);
  try {
    const t = await openTunnel(s, token, host).then(
      (d) => {
        d.destroy();
        return null;
      },
      (e: { status: number; body: { code: string; message: string } }) => e,
    );
    if (!t) throw new Error(`tunnel to ${host} was opened`);
    return t;
  } finally {
    s.close();
  }
};

/** A long-running remote command through `mssh ssh`; resolves once it printed "started". */
async function liveSession(u: User, host: string) {
  const p = run(BIN.mssh, [...sshArgs(host), '--', 'echo started; sleep 60'], { env: u.env });
  await p.waitOutput(/started/, 20_000, 'out');
  return p;
}

describe('grants, users and logout (PGlite; mssh-relay through the admin socket)', () => {
  let relay: Relay;
  let admin: User;
  let alice: User;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    admin = await loginUser(relay);
    await startAgent(relay, 'web-1');
    await startAgent(relay, 'db-1');
    const add = await admin.mssh(['admin', 'users', 'add', 'alice', '--password-stdin'], { input: 'alice-password\n' });
    expect(add.code, add.stderr).toBe(0);
    alice = await loginUser(relay, 'alice', 'alice-password');
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('a new user reaches nothing; grants (user and role) open exactly what they match; revoking applies at once', async () => {
    expect(await hostsOf(admin)).toEqual(['db-1', 'web-1']);
    expect(await hostsOf(alice)).toEqual([]);

    // Ungranted and unknown machines get the same 403, from the relay and from mssh.
    const denied = await alice.mssh([...sshArgs('web-1'), '--', 'echo', 'hi']);
    expect(denied.code).toBe(255);
    expect(denied.stderr).toMatch(/CLI_ERR_NO_GRANT/);
    expect(denied.stderr).toMatch(/mssh ls/);
    const unknown = await alice.mssh([...sshArgs('nope'), '--', 'echo', 'hi']);
    expect(unknown.code).toBe(255);
    expect(unknown.stderr.replaceAll('nope', 'X')).toBe(denied.stderr.replaceAll('web-1', 'X'));
    const s = await relaySession(relay);
    const token = await apiLogin(s, 'alice', 'alice-password');
    s.close();
    const a = await tunnelError(relay, token, 'web-1');
    const b = await tunnelError(relay, token, 'nope');
    expect(a.status).toBe(403);
    expect(a.body.code).toBe('RLY_ERR_NO_GRANT');
    expect(b.status).toBe(403);
    expect(b.body.message.replaceAll('nope', 'X')).toBe(a.body.message.replaceAll('web-1', 'X'));

    // user grant, from the admin's mssh
    const g = await admin.mssh(['admin', 'grant', 'alice', 'web-*']);
    expect(g.code, g.stderr).toBe(0);
    expect(await hostsOf(alice)).toEqual(['web-1']);
    const ok = await alice.mssh([...sshArgs('web-1'), '--', 'echo', 'hi']);
    expect(ok.stdout, ok.stderr).toBe('hi\n');
    expect((await alice.mssh([...sshArgs('db-1'), '--', 'echo', 'hi'])).stderr).toMatch(/CLI_ERR_NO_GRANT/);

    // role grant, from mssh-relay on the server (through the running relay's admin socket)
    const rg = await relay.cli(['grant', '--role', 'ops', 'db-?']);
    expect(rg.code, rg.stderr).toBe(0);
    expect(await hostsOf(alice)).toEqual(['web-1']);
    const role = await relay.cli(['user', 'set-role', 'alice', 'ops']);
    expect(role.code, role.stderr).toBe(0);
    // A role change ends the logins judged under the old role: alice logs in again.
    expect((await alice.mssh(['ls'])).stderr).toMatch(/CLI_ERR_SESSION_ENDED/);
    alice = await loginUser(relay, 'alice', 'alice-password');
    expect(await hostsOf(alice)).toEqual(['db-1', 'web-1']);
    expect((await alice.mssh([...sshArgs('db-1'), '--', 'echo', 'db'])).stdout).toBe('db\n');

    const list = await admin.mssh(['admin', 'grants', '--json']);
    expect(
      JSON.parse(list.stdout).map(
        (x: { subjectKind: string; subject: string; pattern: string }) => `${x.subjectKind}:${x.subject}:${x.pattern}`,
      ),
    ).toEqual(['role:ops:db-?', 'user:alice:web-*']);
    const table = await relay.cli(['grants']);
    expect(table.stdout).toMatch(/role\s+ops\s+db-\?\s+local-admin/);

    // revoke: the very next session is refused
    const rv = await admin.mssh(['admin', 'revoke-grant', 'alice', 'web-*']);
    expect(rv.code, rv.stderr).toBe(0);
    expect((await alice.mssh([...sshArgs('web-1'), '--', 'echo', 'hi'])).stderr).toMatch(/CLI_ERR_NO_GRANT/);
    expect(await hostsOf(alice)).toEqual(['db-1']);
    const again = await relay.cli(['revoke-grant', 'alice', 'web-*']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/RLY_ERR_UNKNOWN_GRANT/);
    const bad = await admin.mssh(['admin', 'grant', 'alice', 'Web/*']);
    expect(bad.code).toBe(64); // usage (docs/cli.md, "Exit codes")
    expect(bad.stderr).toMatch(/CLI_ERR_USAGE.*\n.*wildcards/);
    // alice is no admin
    expect((await alice.mssh(['admin', 'grants'])).stderr).toMatch(/CLI_ERR_FORBIDDEN/);
  });

  it('disabling a user: the next request is refused (401) and --kill-sessions ends live sessions within 2 s', async () => {
    await relay.cli(['grant', 'alice', 'web-1']);
    const live = await liveSession(alice, 'web-1');
    const d = await admin.mssh(['admin', 'users', 'disable', 'alice', '--kill-sessions']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/Ended 1 live session/);
    await waitFor(() => !live.running, 2_000, "the disabled user's session to end");

    const ls = await alice.mssh(['ls']);
    expect(ls.code).toBe(1);
    expect(ls.stderr).toMatch(/CLI_ERR_ACCOUNT_DISABLED/);
    const s = await relaySession(relay);
    expect(
      (await request(s, 'POST', '/v1/auth/login', { body: { user: 'alice', password: 'alice-password' } })).status,
    ).toBe(401);
    s.close();
    const users = JSON.parse((await relay.cli(['user', 'list', '--json'])).stdout) as Array<{
      name: string;
      disabled: boolean;
    }>;
    expect(users.find((u) => u.name === 'alice')!.disabled).toBe(true);

    expect((await relay.cli(['user', 'enable', 'alice'])).code).toBe(0);
    // Enabling revives no old login: alice logs in again.
    expect((await alice.mssh(['ls'])).stderr).toMatch(/CLI_ERR_SESSION_ENDED/);
    alice = await loginUser(relay, 'alice', 'alice-password');
    expect(await hostsOf(alice)).toEqual(['db-1', 'web-1']);
    // password change through mssh-relay: the old password stops working
    expect((await relay.cli(['user', 'passwd', 'alice', '--password-stdin'], 'alice-new-password\n')).code).toBe(0);
    const s2 = await relaySession(relay);
    expect(
      (await request(s2, 'POST', '/v1/auth/login', { body: { user: 'alice', password: 'alice-password' } })).status,
    ).toBe(401);
    expect(
      (await request(s2, 'POST', '/v1/auth/login', { body: { user: 'alice', password: 'alice-new-password' } })).status,
    ).toBe(200);
    s2.close();
  });

  it('mssh logout revokes the token on the relay: the old token stops working', async () => {
    const u = await loginUser(relay);
    const creds = JSON.parse(readFileSync(join(u.configDir, 'credentials.json'), 'utf8')) as {
      relays: Record<string, { token?: string }>;
    };
    const token = Object.values(creds.relays)[0]!.token!;
    const s = await relaySession(relay);
    expect((await request(s, 'GET', '/v1/hosts', { token })).status).toBe(200);
    const out = await u.mssh(['logout']);
    expect(out.code, out.stderr).toBe(0);
    const after = await request(s, 'GET', '/v1/hosts', { token });
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('AUTH_ERR_TOKEN_REVOKED');
    s.close();
  });
});

describe('mssh-relay admin commands on the database of a stopped relay (PGlite)', () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'web-9');
    expect((await relay.cli(['user', 'add', 'carl', '--password-stdin'], 'carl-password\n')).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  // Seven offline commands each open the embedded database (PGlite, ~5 s apiece on 2 cores) plus two restarts.
  it(
    'grant, role, disable and agent revoke work offline and hold after the restart',
    { timeout: 180_000 },
    async () => {
      await relay.proc.stop();
      const g = await relay.cli(['grant', 'carl', 'web-*']);
      expect(g.code, g.stderr).toBe(0);
      expect((await relay.cli(['grants', '--json'])).stdout).toMatch(/"pattern": "web-\*"/);
      expect((await relay.cli(['user', 'set-role', 'carl', 'ops'])).code).toBe(0);
      expect((await relay.cli(['user', 'list'])).stdout).toMatch(/carl\s+no\s+ops\s+active/);
      const bad = await relay.cli(['grant', 'carl', 'WEB']);
      expect(bad.code).not.toBe(0);
      expect(bad.code).toBe(64);
      expect(bad.stderr).toMatch(/not a valid grant pattern \[CLI_ERR_USAGE\]\n.*wildcards/);
      await relay.restart();
      const carl = await loginUser(relay, 'carl', 'carl-password');
      expect(await hostsOf(carl)).toEqual(['web-9']);
      await relay.proc.stop();
      expect((await relay.cli(['user', 'disable', 'carl'])).code).toBe(0);
      const rv = await relay.cli(['agent', 'revoke', 'web-9']);
      expect(rv.code, rv.stderr).toBe(0);
      await relay.restart();
      expect((await carl.mssh(['ls'])).stderr).toMatch(/CLI_ERR_ACCOUNT_DISABLED/);
      expect((await relay.cli(['agent', 'list', '--json'])).stdout).toMatch(/"revokedAt": "20/);
    },
  );
});

describe('agents: list, revoke, re-enrol, stale (Postgres)', () => {
  let relay: Relay;
  let admin: User;
  let victim: Agent;

  beforeAll(async () => {
    relay = await startRelay('postgres');
    admin = await loginUser(relay);
    victim = await startAgent(relay, 'victim');
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('agents list shows versions and fingerprints; revoking ends the live session within 2 s, the agent cannot come back; a fresh enrolment works', async () => {
    const list = JSON.parse((await admin.mssh(['admin', 'agents', 'list', '--json'])).stdout) as Array<
      Record<string, unknown>
    >;
    expect(list[0]).toMatchObject({ name: 'victim', online: true, revokedAt: null, stale: false, protocolVersion: 1 });
    expect(list[0]!.identityFingerprint).toMatch(/^SHA256:/);
    expect((list[0]!.hostKeyFingerprints as string[])[0]).toMatch(/^SHA256:/);
    expect((await relay.cli(['agent', 'list'])).stdout).toMatch(/^NAME\s+STATUS.*\nvictim\s+online/);

    const live = await liveSession(admin, 'victim');
    const r = await admin.mssh(['admin', 'agents', 'revoke', 'victim']);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => !live.running, 2_000, "the revoked agent's session to end");
    // The agent is refused from now on: it gives up (permanent refusal), and so does a fresh start.
    await waitFor(() => !victim.proc.running, 15_000, 'the revoked agent to stop');
    expect(victim.proc.err + victim.proc.out).toMatch(/RLY_ERR_AGENT_REVOKED/);
    const again = run(BIN.agent, ['run', '--state-dir', victim.stateDir, '--log-level', 'info']);
    await waitFor(() => !again.running, 15_000, 'the restarted revoked agent to give up');
    expect(again.err + again.out).toMatch(/RLY_ERR_AGENT_REVOKED/);
    expect((await admin.mssh(['ls', '--json'])).stdout).not.toMatch(/victim/);
    const listed = JSON.parse((await relay.cli(['agent', 'list', '--json'])).stdout) as Array<{
      name: string;
      revokedAt: string | null;
    }>;
    expect(listed.find((a) => a.name === 'victim')!.revokedAt).not.toBeNull();

    // Re-enrolment of that name needs (and works with) a fresh token.
    const back = await startAgent(relay, 'victim');
    expect(back.proc.running).toBe(true);
    expect((await admin.mssh([...sshArgs('victim'), '--', 'echo', 'back'])).stdout).toBe('back\n');

    const c = new pg.Client(relay.databaseUrl);
    await c.connect();
    try {
      const ev = await c.query(`SELECT type, code, actor, host FROM audit_events WHERE type = 'agent.revoked'`);
      expect(ev.rows[0]).toMatchObject({ code: 'AGT004I', actor: 'admin', host: 'victim' });
    } finally {
      await c.end();
    }
  });

  it('a machine not seen for --stale-after is stale in ls and counted in /healthz; forget frees the name; denials are audited', async () => {
    await startAgent(relay, 'old', { start: false });
    const c = new pg.Client(relay.databaseUrl);
    await c.connect();
    try {
      await c.query(`UPDATE agents SET last_seen_at = now() - interval '40 days' WHERE name = 'old'`);
      const ls = await admin.mssh(['ls']);
      expect(ls.stdout).toMatch(/\nold\s+stale/);
      const s = await relaySession(relay);
      // The database counts of /healthz are at most 500 ms old (host-service.ts).
      await expect
        .poll(async () => ((await request(s, 'GET', '/healthz')).body as { agentsStale: number }).agentsStale, {
          timeout: 3_000,
          interval: 100,
        })
        .toBe(1);

      // a non-admin's refused tunnel is audited as session.denied (no_grant)
      await admin.mssh(['admin', 'users', 'add', 'bob', '--password-stdin'], { input: 'bob-password\n' });
      const token = await apiLogin(s, 'bob', 'bob-password');
      s.close();
      expect((await tunnelError(relay, token, 'old')).body.code).toBe('RLY_ERR_NO_GRANT');
      await waitFor(
        async () =>
          (await c.query(`SELECT 1 FROM audit_events WHERE type = 'session.denied' AND actor = 'bob'`)).rowCount,
        5_000,
        'the denial in the audit trail',
      );
      const denied = await c.query(
        `SELECT code, host, details FROM audit_events WHERE type = 'session.denied' AND actor = 'bob'`,
      );
      expect(denied.rows[0]).toMatchObject({ code: 'SES003W', host: 'old', details: { reason: 'no_grant' } });

      const f = await relay.cli(['agent', 'forget', 'old']);
      expect(f.code, f.stderr).toBe(0);
      expect((await c.query(`SELECT 1 FROM agents WHERE name = 'old'`)).rowCount).toBe(0);
    } finally {
      await c.end();
    }
  });
});
