import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import type { GrantRequest, UserInfo } from '@mssh/protocol';
import { createAdminCommands, type AdminCommandOps } from './admin-commands.js';
import { noPrompter } from './prompt.js';

/** An in-memory relay: the command layer's contract, not the relay's (tested in apps/relay). */
function memoryOps(via?: string) {
  const users = new Map<string, UserInfo>();
  const grants: GrantRequest[] = [];
  const calls: string[] = [];
  let closed = 0;
  const user = (name: string) => {
    const u = users.get(name);
    if (!u) throw Object.assign(new Error(`no user named "${name}"`), { code: 'RLY_ERR_UNKNOWN_USER' });
    return u;
  };
  const ops: AdminCommandOps = {
    via,
    async createUser(r) {
      calls.push(`createUser ${r.name} ${r.password} ${r.admin}`);
      users.set(r.name, { name: r.name, admin: r.admin, role: null, disabled: false } as unknown as UserInfo);
    },
    async listUsers() {
      return [...users.values()];
    },
    async listRelays() {
      return [];
    },
    async disableUser(name, kill) {
      calls.push(`disable ${name} ${kill}`);
      return { ...user(name), sessionsEnded: kill ? 2 : 0 };
    },
    async enableUser(name) {
      return user(name);
    },
    async setPassword(name, pw) {
      calls.push(`passwd ${name} ${pw}`);
      return user(name);
    },
    async setRole(name, role) {
      const u = { ...user(name), role };
      users.set(name, u);
      return u;
    },
    async addGrant(r) {
      const had = grants.some((g) => g.subject === r.subject && g.pattern === r.pattern);
      if (!had) grants.push(r);
      return { changed: !had };
    },
    async removeGrant() {
      return { changed: true };
    },
    async listGrants() {
      return [];
    },
    async listAgents() {
      return [];
    },
    async revokeAgent(name) {
      return { name, wasOnline: true } as never;
    },
    async forgetAgent() {
      return { wasOnline: false };
    },
    async labelAgent(name, req) {
      calls.push(`label ${name} ${JSON.stringify(req)}`);
      return {
        name,
        labels: { env: 'staging', site: 'berlin' },
        before: { env: 'prod', role: 'db' },
        sessionsEnded: 1,
      };
    },
  };
  return {
    ops,
    calls,
    closed: () => closed,
    withOps: async <T>(fn: (o: AdminCommandOps) => Promise<T>) => {
      try {
        return await fn(ops);
      } finally {
        closed++;
      }
    },
  };
}

function commands(program: 'mssh-relay' | 'mssh', m = memoryOps(), stdin = '') {
  let out = '';
  const spell =
    program === 'mssh-relay'
      ? {
          grant: 'mssh-relay grant',
          enroll: 'mssh-relay agent enroll',
          usersAdd: 'mssh-relay user add',
          usersPasswd: 'mssh-relay user passwd',
        }
      : {
          grant: 'mssh admin grant',
          enroll: 'mssh admin agents enroll',
          usersAdd: 'mssh admin users add',
          usersPasswd: 'mssh admin users passwd',
        };
  const c = createAdminCommands({
    withOps: m.withOps,
    stdout: { write: (s: string) => (out += s) },
    password: { stdin: Readable.from([Buffer.from(stdin)]), prompter: noPrompter },
    spell,
  });
  return { c, m, out: () => out };
}

describe('admin commands (shared by mssh-relay and mssh admin)', () => {
  it('the same messages in both programs, only the spelled commands differ', async () => {
    const relay = commands('mssh-relay', memoryOps(), 'alice-password\n');
    const mssh = commands('mssh', memoryOps(), 'alice-password\n');
    await relay.c.usersAdd({ name: 'alice', admin: false, passwordStdin: true });
    await mssh.c.usersAdd({ name: 'alice', admin: false, passwordStdin: true });
    expect(relay.out()).toBe(
      'Created user "alice".\nThey reach no machine until granted: mssh-relay grant alice \'PATTERN\'\n',
    );
    expect(mssh.out()).toBe(
      'Created user "alice".\nThey reach no machine until granted: mssh admin grant alice \'PATTERN\'\n',
    );
    expect(relay.m.calls).toEqual(['createUser alice alice-password false']);
    expect(relay.m.closed()).toBe(1);
  });

  it('grants, roles, disable, agents: one message each', async () => {
    const m = memoryOps('database');
    const t = commands('mssh-relay', m, 'bob-password\n');
    await t.c.usersAdd({ name: 'bob', admin: true, passwordStdin: true });
    await t.c.grant({ subject: 'bob', pattern: 'web-*', role: false });
    await t.c.grant({ subject: 'bob', pattern: 'web-*', role: false });
    await t.c.revokeGrant({ subject: 'ops', pattern: 'db-?', role: true });
    await t.c.usersSetRole({ name: 'bob', role: 'ops' });
    await t.c.usersSetRole({ name: 'bob' });
    await t.c.usersDisable({ name: 'bob', killSessions: true });
    await t.c.usersDisable({ name: 'bob', killSessions: false });
    await t.c.agentsRevoke({ name: 'Web-1' });
    await t.c.agentsForget({ name: 'web-1' });
    await t.c.grants({ json: false });
    expect(t.out().split('\n')).toEqual([
      'Created user "bob" (admin).',
      'Granted user "bob" access to web-*.',
      'user "bob" already had access to web-*.',
      'Removed the grant of db-? to role "ops"; new sessions are refused at once.',
      'User "bob" now has the role "ops".',
      'User "bob" now has no role.',
      'Disabled user "bob": their logins stop working now. Ended 2 live session(s).',
      '(The relay is not running, so there were no live sessions to end.)',
      'Disabled user "bob": their logins stop working now. Live sessions go on (add --kill-sessions to end them).',
      'Revoked "web-1" and dropped its connection and sessions; it is refused from now on. To enrol it again: mssh-relay agent enroll web-1',
      'Forgot "web-1"; the name is free again.',
      "No grants: only admins reach machines. Add one with `mssh-relay grant USER 'PATTERN'`.",
      '',
    ]);
  });

  it('refuses bad names and patterns before asking for anything (usage, exit 64; host names CLI_ERR_BAD_HOST_NAME)', async () => {
    const { c, m } = commands('mssh');
    await expect(c.usersAdd({ name: 'Not A Name', admin: false, passwordStdin: true })).rejects.toMatchObject({
      code: 'CLI_ERR_USAGE',
      exitCode: 64,
    });
    await expect(c.grant({ subject: 'alice', pattern: 'Web/*', role: false })).rejects.toMatchObject({
      code: 'CLI_ERR_USAGE',
      message: '"Web/*" is not a valid grant pattern',
      hint: expect.stringContaining("mssh admin grant alice 'web-*'"),
    });
    await expect(c.grant({ subject: 'Bad Role', pattern: 'web-*', role: true })).rejects.toMatchObject({
      code: 'CLI_ERR_USAGE',
      message: '"Bad Role" is not a valid role name',
    });
    await expect(c.agentsRevoke({ name: 'web_1' })).rejects.toMatchObject({ code: 'CLI_ERR_BAD_HOST_NAME' });
    await expect(c.usersPasswd({ name: 'alice', passwordStdin: true })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_PASSWORD',
    });
    expect(m.calls).toEqual([]);
    expect(m.closed()).toBe(0);
  });

  it('--json prints one JSON array', async () => {
    const m = memoryOps();
    const t = commands('mssh', m, 'carol-password\n');
    await t.c.usersAdd({ name: 'carol', admin: false, passwordStdin: true });
    const j = commands('mssh', m);
    await j.c.usersList({ json: true });
    expect(JSON.parse(j.out())).toEqual([expect.objectContaining({ name: 'carol' })]);
  });

  it('label grants and relabelling: one message each; bad labels are CLI_ERR_BAD_LABEL naming the rule', async () => {
    const m = memoryOps();
    const t = commands('mssh', m);
    await t.c.grant({ subject: 'alice', labels: 'role=web,env=staging', role: false });
    await t.c.agentsLabel({ name: 'db-1', edits: ['env=staging', 'role-', 'site=berlin'], json: false });
    expect(t.out().split('\n')).toEqual([
      'Granted user "alice" access to the machines labelled env=staging,role=web.',
      'Labels of "db-1": env=staging,site=berlin (were env=prod,role=db).',
      'Ended 1 running session(s) that no grant matches any more (reason grant_revoked).',
      '',
    ]);
    expect(m.calls).toEqual(['label db-1 {"set":{"env":"staging","site":"berlin"},"remove":["role"]}']);
    await expect(t.c.grant({ subject: 'alice', labels: 'Env=prod', role: false })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_LABEL',
      message: expect.stringContaining('(rule key_syntax)'),
    });
    await expect(t.c.grant({ subject: 'alice', role: false })).rejects.toMatchObject({ code: 'CLI_ERR_USAGE' });
    await expect(
      t.c.grant({ subject: 'alice', pattern: 'web-*', labels: 'env=prod', role: false }),
    ).rejects.toMatchObject({ code: 'CLI_ERR_USAGE' });
    await expect(t.c.agentsLabel({ name: 'db-1', edits: ['env=pr od'], json: false })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_LABEL',
      message: expect.stringContaining('(rule value_syntax)'),
    });
    await expect(t.c.agentsLabel({ name: 'db-1', edits: [], json: false })).rejects.toMatchObject({
      code: 'CLI_ERR_USAGE',
    });
    expect(m.calls).toHaveLength(1);
  });
});
