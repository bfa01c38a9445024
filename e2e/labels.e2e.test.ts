/**
 * Issue 21 (labels): machines carry the admin's labels, set at enrolment and changed later (audited);
 * `mssh ls` filters on them; a grant by label selector opens exactly the machines carrying every pair,
 * and relabelling a machine changes who may reach it at once: a running session no grant matches any
 * more ends (reason grant_revoked). Agent-reported facts are shown, never granted on. Real relay (PGlite),
 * agents and sshd, driven through the built programs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  adminAuditEvents,
  loginUser,
  run,
  sshArgs,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { login as apiLogin, openTunnel, relaySession } from './fixtures/tunnel-client.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

type Listed = { name: string; online: boolean; labels?: Record<string, string>; facts?: Record<string, string> };

const ls = async (u: User, args: string[] = []): Promise<Listed[]> => {
  const r = await u.mssh(['ls', ...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
};
const names = async (u: User, args: string[] = []) => (await ls(u, args)).map((h) => h.name).sort();

/** The wire code of the relay's refusal to open a tunnel (null when it opened). */
async function tunnelCode(relay: Relay, token: string, host: string): Promise<string | null> {
  const s = await relaySession(relay);
  try {
    return await openTunnel(s, token, host).then(
      (d) => {
        d.destroy();
        return null;
      },
      (e: { body: { code: string } }) => e.body.code,
    );
  } finally {
    s.close();
  }
}

describe('labels: enrolment, ls filters, label grants, relabelling (PGlite)', () => {
  let relay: Relay;
  let admin: User;
  let sam: User;
  let samToken: string;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    admin = await loginUser(relay);
    await startAgent(relay, 'stg-web', { labels: ['env=staging', 'role=web'] });
    await startAgent(relay, 'prod-web', { labels: ['env=prod', 'role=web'] });
    await startAgent(relay, 'prod-db', { labels: ['env=prod', 'role=db'] });
    const add = await admin.mssh(['admin', 'users', 'add', 'sam', '--password-stdin'], { input: 'sam-password-1\n' });
    expect(add.code, add.stderr).toBe(0);
    sam = await loginUser(relay, 'sam', 'sam-password-1');
    const s = await relaySession(relay);
    samToken = await apiLogin(s, 'sam', 'sam-password-1');
    s.close();
  }, 120_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('labels given at enrolment are shown and filtered on; facts come from the agent; bad filters name the rule', async () => {
    const all = await ls(admin);
    expect(all.find((h) => h.name === 'prod-db')!.labels).toEqual({ env: 'prod', role: 'db' });
    const facts = all.find((h) => h.name === 'prod-db')!.facts!;
    expect(facts).toMatchObject({ os: process.platform, arch: process.arch, target: 'sshd' });
    expect(await names(admin, ['env=prod'])).toEqual(['prod-db', 'prod-web']);
    expect(await names(admin, ['env=prod', 'role=db'])).toEqual(['prod-db']);
    expect(await names(admin, ['*-web', 'env=prod'])).toEqual(['prod-web']);
    expect(await names(admin, ['--online'])).toEqual(['prod-db', 'prod-web', 'stg-web']);
    const table = await admin.mssh(['ls', 'env=staging']);
    expect(table.stdout).toMatch(/^NAME\s+STATUS\s+LAST SEEN\s+LABELS\s+HOST KEY\n/);
    expect(table.stdout).toMatch(/\nstg-web\s+online\s+now\s+env=staging,role=web\s/);
    expect(table.stdout).not.toMatch(/prod-/);
    const bad = await admin.mssh(['ls', 'Env=prod']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\(rule key_syntax\).*\[CLI_ERR_BAD_LABEL\]/);
    const agents = await relay.cli(['agent', 'list']);
    expect(agents.stdout).toMatch(/prod-db\s.*env=prod,role=db/);

    // bad labels at enrolment and relabelling: refused, naming the rule, by both programs
    const e1 = await relay.cli(['agent', 'enroll', 'x-1', '--label', 'env=pr od']);
    expect(e1.code).not.toBe(0);
    expect(e1.stderr).toMatch(/rule value_syntax/);
    expect(e1.stderr).toMatch(/CLI_ERR_BAD_LABEL/);
    const e2 = await admin.mssh(['admin', 'agents', 'enroll', 'x-1', '--label', 'env']);
    expect(e2.code).toBe(1);
    expect(e2.stderr).toMatch(/rule missing_equals.*\[CLI_ERR_BAD_LABEL\]/);
    const many = Array.from({ length: 33 }, (_, i) => `k${i}=v`);
    const e3 = await admin.mssh(['admin', 'agents', 'label', 'prod-db', ...many]);
    expect(e3.code).toBe(1);
    expect(e3.stderr).toMatch(/rule too_many.*\[CLI_ERR_BAD_LABEL\]/);
  });

  it('a label grant reaches staging, is refused on prod (RLY_ERR_NO_GRANT); relabelling lets in and ends sessions', async () => {
    expect(await names(sam)).toEqual([]);
    const g = await admin.mssh(['admin', 'grant', 'sam', '--labels', 'role=web,env=staging']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/Granted user "sam" access to the machines labelled env=staging,role=web/);
    const grants = JSON.parse((await admin.mssh(['admin', 'grants', '--json'])).stdout) as Array<{ labels?: string }>;
    expect(grants).toEqual([expect.objectContaining({ subject: 'sam', labels: 'env=staging,role=web' })]);
    expect(await names(sam)).toEqual(['stg-web']);
    expect((await sam.mssh([...sshArgs('stg-web'), '--', 'echo', 'hi'])).stdout).toBe('hi\n');
    expect(await tunnelCode(relay, samToken, 'stg-web')).toBeNull();
    expect(await tunnelCode(relay, samToken, 'prod-web')).toBe('RLY_ERR_NO_GRANT');
    const refused = await sam.mssh([...sshArgs('prod-web'), '--', 'echo', 'hi']);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/CLI_ERR_NO_GRANT/);

    // relabel prod -> staging (from the relay's CLI): sam gets in at once
    const r1 = await relay.cli(['agent', 'label', 'prod-web', 'env=staging']);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toMatch(/Labels of "prod-web": env=staging,role=web \(were env=prod,role=web\)/);
    expect(await names(sam)).toEqual(['prod-web', 'stg-web']);
    expect(await tunnelCode(relay, samToken, 'prod-web')).toBeNull();

    // a running session on it, then relabel back: it ends (grant_revoked), the other one goes on
    const live = run(BIN.mssh, [...sshArgs('prod-web'), '--', 'echo started; sleep 60'], { env: sam.env });
    const other = run(BIN.mssh, [...sshArgs('stg-web'), '--', 'echo started; sleep 60'], { env: sam.env });
    try {
      await live.waitOutput(/started/, 20_000, 'out');
      await other.waitOutput(/started/, 20_000, 'out');
      const r2 = await admin.mssh(['admin', 'agents', 'label', 'prod-web', 'env=prod', '--json']);
      expect(r2.code, r2.stderr).toBe(0);
      expect(JSON.parse(r2.stdout)).toMatchObject({ labels: { env: 'prod', role: 'web' }, sessionsEnded: 1 });
      await waitFor(() => !live.running, 2_000, 'the session to the relabelled machine to end');
      expect(await live.exited).toBe(255);
      expect(live.err).toMatch(/no grant of yours matches it any more \[CLI_ERR_SESSION_ENDED\]/);
      expect(other.running).toBe(true);
      expect(await tunnelCode(relay, samToken, 'prod-web')).toBe('RLY_ERR_NO_GRANT');
    } finally {
      await live.stop('SIGKILL');
      await other.stop('SIGKILL');
    }

    // removing a label: role- takes stg-web out of the selector
    const r3 = await admin.mssh(['admin', 'agents', 'label', 'stg-web', 'role-']);
    expect(r3.code, r3.stderr).toBe(0);
    expect(await names(sam)).toEqual([]);
    expect(await tunnelCode(relay, samToken, 'stg-web')).toBe('RLY_ERR_NO_GRANT');
    const rv = await admin.mssh(['admin', 'revoke-grant', 'sam', '--labels', 'env=staging,role=web']);
    expect(rv.code, rv.stderr).toBe(0);

    // audit: each relabel (from, to, sessions ended), and the session's end reason
    const changes = await adminAuditEvents(admin, ['--type', 'agent.labels_changed']);
    expect(changes.map((e) => [e.host, e.code, e.details])).toEqual([
      [
        'prod-web',
        'AGT006I',
        expect.objectContaining({
          from: { env: 'prod', role: 'web' },
          to: { env: 'staging', role: 'web' },
          sessionsEnded: 0,
        }),
      ],
      [
        'prod-web',
        'AGT006I',
        expect.objectContaining({
          from: { env: 'staging', role: 'web' },
          to: { env: 'prod', role: 'web' },
          sessionsEnded: 1,
        }),
      ],
      [
        'stg-web',
        'AGT006I',
        expect.objectContaining({ from: { env: 'staging', role: 'web' }, to: { env: 'staging' } }),
      ],
    ]);
    expect(changes.map((e) => e.actor)).toEqual(['local-admin', 'admin', 'admin']);
    await waitFor(
      async () =>
        (await adminAuditEvents(admin, ['--type', 'session.end', '--host', 'prod-web'])).some(
          (e) => (e.details as { reason?: string }).reason === 'grant_revoked',
        ),
      5_000,
      'the session.end with reason grant_revoked',
    );
  });

  it('removing a grant ends the running sessions no remaining grant matches (grant_revoked), at once', async () => {
    const g = await admin.mssh(['admin', 'grant', 'sam', 'stg-web']);
    expect(g.code, g.stderr).toBe(0);
    const live = run(BIN.mssh, [...sshArgs('stg-web'), '--', 'echo started; sleep 60'], { env: sam.env });
    try {
      await live.waitOutput(/started/, 20_000, 'out');
      const rv = await admin.mssh(['admin', 'revoke-grant', 'sam', 'stg-web']);
      expect(rv.code, rv.stderr).toBe(0);
      await waitFor(() => !live.running, 2_000, 'the session whose grant was removed to end');
      expect(await live.exited).toBe(255);
      expect(live.err).toMatch(/no grant of yours matches it any more \[CLI_ERR_SESSION_ENDED\]/);
      expect(await tunnelCode(relay, samToken, 'stg-web')).toBe('RLY_ERR_NO_GRANT');
    } finally {
      await live.stop('SIGKILL');
    }
    const removed = await adminAuditEvents(admin, ['--type', 'grant.removed']);
    expect(removed.at(-1)?.details).toMatchObject({ subject: 'sam', pattern: 'stg-web', sessionsEnded: 1 });
  });
});
