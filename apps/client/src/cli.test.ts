import { describe, expect, it } from 'vitest';
import { CommanderError } from 'commander';
import { buildProgram, failureExitCode, type Handlers } from './cli.js';
import { connectTimeoutMs, parseDestination, parseSshOptions, remoteCommand, wantPty } from './commands/ssh.js';
import { editDistance, suggestNames } from './commands/suggest.js';
import { formatCliError, cliErrorFromWire, tunnelEndedByRelay, CLI_ERRORS } from './errors.js';
import { TUNNEL_END_CODES } from '@mssh/protocol';
import { readFileSync } from 'node:fs';

/** Parse argv with handlers that record what they were called with. */
async function parse(
  argv: string[],
): Promise<{ calls: Array<[string, unknown]>; out: string; err: string; error?: unknown }> {
  const calls: Array<[string, unknown]> = [];
  const rec = (name: string) => async (a?: unknown) => {
    calls.push([name, a]);
    return 0;
  };
  const handlers: Handlers = {
    login: rec('login'),
    logout: rec('logout'),
    whoami: rec('whoami'),
    ls: rec('ls'),
    ssh: rec('ssh'),
    cp: rec('cp'),
    exec: rec('exec'),
    proxy: rec('proxy'),
    knownHostsList: rec('knownHostsList'),
    knownHostsForget: rec('knownHostsForget'),
    knownHostsOpenssh: rec('knownHostsOpenssh'),
    configSsh: rec('configSsh'),
    keysAdd: rec('keysAdd'),
    keysList: rec('keysList'),
    keysRemove: rec('keysRemove'),
    adminUsersAdd: rec('adminUsersAdd'),
    adminAgentsEnroll: rec('adminAgentsEnroll'),
    adminUsersList: rec('adminUsersList'),
    adminUsersDisable: rec('adminUsersDisable'),
    adminUsersEnable: rec('adminUsersEnable'),
    adminUsersPasswd: rec('adminUsersPasswd'),
    adminUsersSetRole: rec('adminUsersSetRole'),
    adminGrant: rec('adminGrant'),
    adminRevokeGrant: rec('adminRevokeGrant'),
    adminGrants: rec('adminGrants'),
    adminAgentsList: rec('adminAgentsList'),
    adminRelays: rec('adminRelays'),
    adminAgentsRevoke: rec('adminAgentsRevoke'),
    adminAgentsForget: rec('adminAgentsForget'),
    adminAgentsLabel: rec('adminAgentsLabel'),
    adminAudit: rec('adminAudit'),
    adminSessions: rec('adminSessions'),
    completeHosts: rec('completeHosts'),
  };
  let out = '';
  let err = '';
  const { program } = buildProgram(handlers, { writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return { calls, out, err };
  } catch (error) {
    return { calls, out, err, error };
  }
}

describe('mssh command line', () => {
  it('login takes --relay, --user, --password-stdin and --relay-fingerprint', async () => {
    const r = await parse([
      'login',
      '--relay',
      'https://r:8443',
      '--user',
      'alice',
      '--password-stdin',
      '--relay-fingerprint',
      'SHA256:x',
    ]);
    expect(r.calls).toEqual([
      ['login', { relay: 'https://r:8443', user: 'alice', passwordStdin: true, relayFingerprint: 'SHA256:x' }],
    ]);
    const bare = await parse(['login', '--relay', 'r', '--user', 'bob']);
    expect(bare.calls).toEqual([
      ['login', { relay: 'r', user: 'bob', passwordStdin: false, relayFingerprint: undefined }],
    ]);
  });

  it('login without --relay is a usage error printed as mssh: ... with a hint', async () => {
    const r = await parse(['login', '--user', 'alice']);
    expect(r.calls).toEqual([]);
    expect(r.error).toBeInstanceOf(CommanderError);
    expect(r.err).toMatch(/^mssh: required option '--relay <url>' not specified\n/);
    expect(r.err).toContain('Usage: mssh login --relay URL');
  });

  it('ssh: destination, options anywhere before --, and the command words after it', async () => {
    const r = await parse(['ssh', '-i', '/k', 'bob@laptop', '-t', '--', 'sh', '-c', "'exit 7'"]);
    expect(r.calls).toEqual([
      [
        'ssh',
        {
          destination: 'bob@laptop',
          command: ['sh', '-c', "'exit 7'"],
          identities: ['/k'],
          forceTty: true,
          noTty: false,
          login: undefined,
          verbose: false,
          options: [],
          local: [],
          remote: [],
          dynamic: [],
          noCommand: false,
          agentForward: false,
          port: undefined,
        },
      ],
    ]);
    const shell = await parse(['ssh', 'laptop', '-T', '-l', 'root']);
    expect(shell.calls).toEqual([
      [
        'ssh',
        {
          destination: 'laptop',
          command: [],
          identities: [],
          forceTty: false,
          noTty: true,
          login: 'root',
          verbose: false,
          options: [],
          local: [],
          remote: [],
          dynamic: [],
          noCommand: false,
          agentForward: false,
          port: undefined,
        },
      ],
    ]);
    const v = await parse(['ssh', '-v', '--connect-timeout', '5', '-o', 'ConnectTimeout=7', 'laptop']);
    expect(v.calls[0]![1]).toMatchObject({
      destination: 'laptop',
      verbose: true,
      connectTimeout: '5',
      options: ['ConnectTimeout=7'],
    });
    const dashes = await parse(['ssh', 'laptop', '--', 'ls', '-la', '--', 'x']);
    expect((dashes.calls[0]![1] as { command: string[] }).command).toEqual(['ls', '-la', '--', 'x']);
  });

  it('cp: the last path is DEST, options anywhere', async () => {
    const r = await parse(['cp', '-r', 'a', '-p', 'b', 'bob@laptop:/tmp/', '-i', '/k', '-q']);
    expect(r.calls).toEqual([
      [
        'cp',
        {
          sources: ['a', 'b'],
          dest: 'bob@laptop:/tmp/',
          recursive: true,
          preserve: true,
          quiet: true,
          login: undefined,
          identity: '/k',
          verbose: false,
          connectTimeout: undefined,
          all: false,
          parallel: undefined,
          timeout: undefined,
        },
      ],
    ]);
    const push = await parse(['cp', '--parallel', '4', '--timeout', '60', 'f', 'web-*:/tmp/']);
    expect(push.calls[0]![1]).toMatchObject({ sources: ['f'], dest: 'web-*:/tmp/', parallel: '4', timeout: '60' });
    const none = await parse(['cp']);
    expect(none.calls).toEqual([]);
    expect(none.err).toMatch(/missing required argument/);
  });

  it('exec: selector words before --, the command after it (options of the command stay its own)', async () => {
    const r = await parse(['exec', 'web-*', 'env=prod', '-l', 'bob', '--parallel', '4', '--', 'uname', '-a', '--all']);
    expect(r.calls).toEqual([
      [
        'exec',
        {
          selector: ['web-*', 'env=prod'],
          command: ['uname', '-a', '--all'],
          all: false,
          login: 'bob',
          identity: undefined,
          parallel: '4',
          timeout: undefined,
          stdin: false,
          json: false,
          outDir: undefined,
        },
      ],
    ]);
    const all = await parse(['exec', '--all', '--json', '--timeout', '9', '--stdin', '--', 'echo', '--', 'hi']);
    expect(all.calls[0]![1]).toMatchObject({
      selector: [],
      command: ['echo', '--', 'hi'],
      all: true,
      json: true,
      timeout: '9',
      stdin: true,
    });
    const noCommand = await parse(['exec', 'web-*', 'uptime']);
    expect(noCommand.calls[0]![1]).toMatchObject({ selector: ['web-*', 'uptime'], command: [] });
  });

  it('ssh: OpenSSH habits -L/-R/-D (repeatable), -N, -A, -p, -i twice, -oName=value glued', async () => {
    const r = await parse([
      'ssh',
      '-N',
      '-A',
      '-p',
      '2222',
      '-i',
      '/a',
      '-i',
      '/b',
      '-L',
      '8080:localhost:80',
      '-L',
      '[::1]:8443:db:443',
      '-R',
      '9000:localhost:3000',
      '-D',
      '1080',
      '-oServerAliveInterval=5',
      'bob@laptop',
    ]);
    expect(r.calls[0]![1]).toMatchObject({
      destination: 'bob@laptop',
      identities: ['/a', '/b'],
      local: ['8080:localhost:80', '[::1]:8443:db:443'],
      remote: ['9000:localhost:3000'],
      dynamic: ['1080'],
      noCommand: true,
      agentForward: true,
      port: '2222',
      options: ['ServerAliveInterval=5'],
    });
  });

  it('ssh: an option meant for the remote command, without --, is refused with the fix', async () => {
    const r = await parse(['ssh', 'laptop', 'uname', '-a']);
    expect(r.calls).toEqual([]);
    expect(r.err).toContain("unknown option '-a'");
    expect(r.err).toContain('put the remote command after --');
  });

  it('proxy, ls, known-hosts and admin subcommands', async () => {
    expect((await parse(['proxy', 'laptop'])).calls).toEqual([['proxy', { host: 'laptop' }]]);
    expect((await parse(['ls', '--json'])).calls).toEqual([['ls', { json: true, filters: [], online: false }]]);
    expect((await parse(['ls'])).calls).toEqual([['ls', { json: false, filters: [], online: false }]]);
    expect((await parse(['ls', 'web-*', 'env=prod', '--online'])).calls).toEqual([
      ['ls', { json: false, filters: ['web-*', 'env=prod'], online: true }],
    ]);
    expect(
      (await parse(['admin', 'agents', 'enroll', 'db-1', '--label', 'env=prod', '--label', 'role=db'])).calls,
    ).toEqual([['adminAgentsEnroll', { name: 'db-1', json: false, labels: ['env=prod', 'role=db'] }]]);
    expect((await parse(['admin', 'agents', 'label', 'db-1', 'env=staging', 'role-'])).calls).toEqual([
      ['adminAgentsLabel', { name: 'db-1', edits: ['env=staging', 'role-'], json: false }],
    ]);
    expect((await parse(['admin', 'grant', 'alice', '--labels', 'env=staging,role=web'])).calls).toEqual([
      ['adminGrant', { subject: 'alice', labels: 'env=staging,role=web', role: false }],
    ]);
    expect((await parse(['known-hosts', 'list'])).calls).toEqual([['knownHostsList', { json: false }]]);
    expect((await parse(['known-hosts', 'list', '--json'])).calls).toEqual([['knownHostsList', { json: true }]]);
    expect((await parse(['known-hosts', 'forget', 'laptop'])).calls).toEqual([
      ['knownHostsForget', { host: 'laptop' }],
    ]);
    expect((await parse(['admin', 'users', 'add', 'carol', '--admin', '--password-stdin'])).calls).toEqual([
      ['adminUsersAdd', { name: 'carol', admin: true, passwordStdin: true }],
    ]);
    expect((await parse(['admin', 'agents', 'enroll', 'laptop'])).calls).toEqual([
      ['adminAgentsEnroll', { name: 'laptop', json: false, labels: [] }],
    ]);
    expect((await parse(['admin', 'grant', 'alice', 'web-*'])).calls).toEqual([
      ['adminGrant', { subject: 'alice', pattern: 'web-*', role: false }],
    ]);
    expect((await parse(['admin', 'grant', '--role', 'ops', 'db-?'])).calls).toEqual([
      ['adminGrant', { subject: 'ops', pattern: 'db-?', role: true }],
    ]);
    expect((await parse(['admin', 'revoke-grant', '--role', 'ops', 'db-?'])).calls).toEqual([
      ['adminRevokeGrant', { subject: 'ops', pattern: 'db-?', role: true }],
    ]);
    expect((await parse(['admin', 'grants', '--json'])).calls).toEqual([['adminGrants', { json: true }]]);
    expect((await parse(['admin', 'users', 'list'])).calls).toEqual([['adminUsersList', { json: false }]]);
    expect((await parse(['admin', 'users', 'disable', 'bob', '--kill-sessions'])).calls).toEqual([
      ['adminUsersDisable', { name: 'bob', killSessions: true }],
    ]);
    expect((await parse(['admin', 'users', 'enable', 'bob'])).calls).toEqual([['adminUsersEnable', { name: 'bob' }]]);
    expect((await parse(['admin', 'users', 'passwd', 'bob', '--password-stdin'])).calls).toEqual([
      ['adminUsersPasswd', { name: 'bob', passwordStdin: true }],
    ]);
    expect((await parse(['admin', 'users', 'set-role', 'bob', 'ops'])).calls).toEqual([
      ['adminUsersSetRole', { name: 'bob', role: 'ops' }],
    ]);
    expect((await parse(['admin', 'users', 'set-role', 'bob'])).calls).toEqual([
      ['adminUsersSetRole', { name: 'bob', role: undefined }],
    ]);
    expect((await parse(['admin', 'agents', 'list', '--json'])).calls).toEqual([['adminAgentsList', { json: true }]]);
    expect((await parse(['admin', 'relays', '--json'])).calls).toEqual([['adminRelays', { json: true }]]);
    expect((await parse(['admin', 'agents', 'revoke', 'laptop'])).calls).toEqual([
      ['adminAgentsRevoke', { name: 'laptop' }],
    ]);
    expect((await parse(['admin', 'agents', 'forget', 'laptop'])).calls).toEqual([
      ['adminAgentsForget', { name: 'laptop' }],
    ]);
    expect(
      (
        await parse([
          'admin',
          'audit',
          '--user',
          'bob',
          '--host',
          'h1',
          '--type',
          'session.*',
          '--since',
          '24h',
          '--limit',
          '5',
          '--json',
        ])
      ).calls,
    ).toEqual([
      [
        'adminAudit',
        {
          user: 'bob',
          host: 'h1',
          type: 'session.*',
          since: '24h',
          until: undefined,
          run: undefined,
          limit: '5',
          json: true,
        },
      ],
    ]);
    expect((await parse(['admin', 'sessions', '--active'])).calls).toEqual([
      ['adminSessions', { active: true, limit: undefined, json: false }],
    ]);
    expect((await parse(['whoami'])).calls).toEqual([['whoami', { json: false }]]);
    expect((await parse(['whoami', '--json'])).calls).toEqual([['whoami', { json: true }]]);
    expect((await parse(['logout'])).calls).toEqual([['logout', undefined]]);
  });

  it('--help and --version exit 0; failures of ssh/proxy exit 255, others by the policy (usage 64, other failures 1)', async () => {
    const h = await parse(['--help']);
    expect((h.error as CommanderError).exitCode).toBe(0);
    expect(h.out).toContain('ssh [options] <destination> [command...]');
    expect((await parse(['--version'])).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(failureExitCode(['ssh', 'x'], 64)).toBe(255);
    expect(failureExitCode(['proxy', 'x'], 1)).toBe(255);
    expect(failureExitCode(['ls'], 1)).toBe(1);
    expect(failureExitCode(['ls', '--bogus'], 64)).toBe(64);
    expect(failureExitCode([], 70)).toBe(70);
  });
});

describe('ssh argument helpers', () => {
  it('user@host, -l wins, default local user, host lower-cased', () => {
    expect(parseDestination('bob@Laptop', undefined, 'me')).toEqual({ user: 'bob', host: 'laptop' });
    expect(parseDestination('laptop', undefined, 'me')).toEqual({ user: 'me', host: 'laptop' });
    expect(parseDestination('bob@laptop', 'root', 'me')).toEqual({ user: 'root', host: 'laptop' });
    expect(parseDestination('a@b@laptop', undefined, 'me')).toEqual({ user: 'a@b', host: 'laptop' });
    expect(() => parseDestination('bob@', undefined, 'me')).toThrow(expect.objectContaining({ code: 'CLI_ERR_USAGE' }));
  });

  it('NAME.mssh (the OpenSSH alias of `mssh config ssh`) is the machine NAME', () => {
    expect(parseDestination('bob@laptop.mssh', undefined, 'me')).toEqual({ user: 'bob', host: 'laptop' });
    expect(parseDestination('Laptop.MSSH', undefined, 'me')).toEqual({ user: 'me', host: 'laptop' });
  });

  it('connect timeout: --connect-timeout, else -o ConnectTimeout=, else 30 s; anything else refused', () => {
    expect(connectTimeoutMs({})).toBe(30_000);
    expect(connectTimeoutMs({ connectTimeout: '5' })).toBe(5_000);
    expect(connectTimeoutMs({ options: ['ConnectTimeout=7'] })).toBe(7_000);
    expect(connectTimeoutMs({ options: ['connecttimeout 8'] })).toBe(8_000);
    expect(connectTimeoutMs({ connectTimeout: '5', options: ['ConnectTimeout=7'] })).toBe(5_000);
    for (const bad of ['0', '-1', '1.5', 'abc', '3601', '']) {
      expect(() => connectTimeoutMs({ connectTimeout: bad })).toThrow(
        expect.objectContaining({ code: 'CLI_ERR_USAGE' }),
      );
    }
    expect(() => connectTimeoutMs({ options: ['StrictHostKeyChecking=no'] })).toThrow(
      expect.objectContaining({ code: 'CLI_ERR_USAGE', message: expect.stringContaining('only -o ConnectTimeout') }),
    );
  });

  it('-o ServerAliveInterval / ServerAliveCountMax set the SSH keepalive; the first of each wins, as in OpenSSH', () => {
    expect(parseSshOptions({})).toEqual({ connectTimeoutMs: 30_000 });
    expect(
      parseSshOptions({ options: ['ServerAliveInterval=20', 'serveralivecountmax 5', 'ServerAliveInterval=99'] }),
    ).toEqual({ connectTimeoutMs: 30_000, keepaliveIntervalMs: 20_000, keepaliveCountMax: 5 });
    expect(parseSshOptions({ options: ['ServerAliveInterval=0'] }).keepaliveIntervalMs).toBe(0);
    for (const bad of [
      'ServerAliveInterval=-1',
      'ServerAliveInterval=1.5',
      'ServerAliveCountMax=0',
      'ServerAliveInterval=',
    ]) {
      expect(() => parseSshOptions({ options: [bad] })).toThrow(expect.objectContaining({ code: 'CLI_ERR_USAGE' }));
    }
    expect(() => parseSshOptions({ options: ['ForwardAgent=yes'] })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('ServerAliveInterval=SECONDS') }),
    );
  });

  it('did you mean: close machine names only', () => {
    expect(editDistance('laptpo', 'laptop')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    const known = ['laptop', 'laptop-2', 'web-1', 'web-2', 'db'];
    expect(suggestNames('laptpo', known)).toEqual(['laptop']);
    expect(suggestNames('lap', known)).toEqual(['laptop', 'laptop-2']);
    expect(suggestNames('web-3', known)).toEqual(['web-1', 'web-2']);
    expect(suggestNames('xyzzy', known)).toEqual([]);
    expect(suggestNames('laptop', known)).toEqual(['laptop-2']);
  });

  it('joins command words like OpenSSH', () => {
    expect(remoteCommand([])).toBeNull();
    expect(remoteCommand(['sh', '-c', "'exit 7'"])).toBe("sh -c 'exit 7'");
  });

  it('PTY only when interactive or forced', () => {
    expect(wantPty({ forceTty: false, noTty: false }, false, true)).toBe(true);
    expect(wantPty({ forceTty: false, noTty: false }, true, true)).toBe(false);
    expect(wantPty({ forceTty: false, noTty: false }, false, false)).toBe(false);
    expect(wantPty({ forceTty: true, noTty: false }, true, false)).toBe(true);
    expect(wantPty({ forceTty: false, noTty: true }, false, true)).toBe(false);
  });
});

describe('errors', () => {
  it('relay wire codes map to coded client errors that say what to do', () => {
    const ctx = { relayUrl: 'https://r:8443', host: 'laptop', user: 'alice' };
    const body = (code: string, statusCode: number) => ({
      statusCode,
      code,
      error: 'x',
      message: 'relay says \u001b[31mred',
    });
    expect(cliErrorFromWire(404, body('RLY_ERR_UNKNOWN_HOST', 404), ctx)).toMatchObject({
      code: 'CLI_ERR_UNKNOWN_HOST',
      hint: expect.stringContaining('mssh ls'),
    });
    expect(cliErrorFromWire(503, body('RLY_ERR_AGENT_OFFLINE', 503), ctx)).toMatchObject({
      code: 'CLI_ERR_HOST_OFFLINE',
      message: expect.stringContaining('not connected'),
    });
    expect(cliErrorFromWire(401, body('AUTH_ERR_TOKEN_EXPIRED', 401), ctx)).toMatchObject({
      code: 'CLI_ERR_TOKEN_EXPIRED',
      hint: expect.stringContaining('mssh login --relay https://r:8443 --user alice'),
    });
    expect(cliErrorFromWire(401, body('AUTH_ERR_MISSING_TOKEN', 401), ctx).code).toBe('CLI_ERR_NOT_LOGGED_IN');
    expect(cliErrorFromWire(401, body('AUTH_ERR_SOMETHING_NEW', 401), ctx).code).toBe('CLI_ERR_TOKEN_REJECTED');
    // Issue 16.6 / 17.5: who the token is no longer, said plainly.
    expect(cliErrorFromWire(401, body('AUTH_ERR_SESSION_ENDED', 401), ctx)).toMatchObject({
      code: 'CLI_ERR_SESSION_ENDED',
      message: expect.stringContaining('ended by an admin; log in again'),
      hint: expect.stringContaining('mssh login --relay https://r:8443 --user alice'),
    });
    expect(cliErrorFromWire(401, body('AUTH_ERR_TOKEN_OUTDATED', 401), ctx)).toMatchObject({
      code: 'CLI_ERR_TOKEN_REJECTED',
      message: expect.stringContaining('older relay version'),
      hint: expect.stringContaining('mssh login'),
    });
    expect(cliErrorFromWire(401, body('AUTH_ERR_USER_DISABLED', 401), ctx)).toMatchObject({
      code: 'CLI_ERR_ACCOUNT_DISABLED',
      message: expect.stringContaining('disabled by an admin'),
    });
    expect(tunnelEndedByRelay(TUNNEL_END_CODES.user_disabled, 'laptop', ctx)).toMatchObject({
      code: 'CLI_ERR_ACCOUNT_DISABLED',
      message: expect.stringContaining('disabled by an admin'),
    });
    expect(tunnelEndedByRelay(TUNNEL_END_CODES.role_changed, 'laptop', ctx)).toMatchObject({
      code: 'CLI_ERR_SESSION_ENDED',
      message: expect.stringContaining('ended by an admin'),
    });
    expect(tunnelEndedByRelay(TUNNEL_END_CODES.relay_shutdown, 'laptop', ctx)).toMatchObject({
      code: 'CLI_ERR_TUNNEL_BROKEN',
      message: 'the session to laptop was ended: the relay at https://r:8443 stopped (a restart or an upgrade)',
      hint: expect.stringContaining('Connect again'),
    });
    expect(cliErrorFromWire(503, body('RLY_ERR_DRAINING', 503), ctx)).toMatchObject({
      code: 'CLI_ERR_RELAY_ERROR',
      message: 'the relay at https://r:8443 is draining for a restart and opens no new sessions (RLY_ERR_DRAINING)',
      hint: expect.stringContaining('Sessions already open are not affected'),
    });
    for (const code of [undefined, 0, 8, 2]) expect(tunnelEndedByRelay(code, 'laptop', ctx)).toBeNull();
    expect(cliErrorFromWire(502, body('RLY_ERR_AGENT_FAILED', 502), ctx).code).toBe('CLI_ERR_AGENT_FAILED');
    const other = cliErrorFromWire(400, body('RLY_ERR_BAD_REQUEST', 400), ctx);
    expect(other.code).toBe('CLI_ERR_RELAY_ERROR');
    expect(other.message).not.toContain('\u001b');
    expect(cliErrorFromWire(502, '<html>', ctx).code).toBe('CLI_ERR_RELAY_BAD_RESPONSE');
    for (const [code, status] of [
      ['RLY_ERR_RATE_LIMITED', 429],
      ['RLY_ERR_BUSY', 503],
      ['RLY_ERR_USER_SESSION_LIMIT', 429],
      ['RLY_ERR_AGENT_SESSION_LIMIT', 429],
      ['RLY_ERR_RELAY_SESSION_LIMIT', 503],
    ] as const) {
      const e = cliErrorFromWire(status, body(code, status), ctx);
      expect(e).toMatchObject({ code: 'CLI_ERR_RELAY_LIMIT', message: expect.stringContaining(code) });
      expect(e.hint).not.toBe('');
      expect(e.message).not.toContain('\u001b');
    }
  });

  it('prints at most two lines, the first naming the code', () => {
    const text = formatCliError(
      cliErrorFromWire(
        404,
        { statusCode: 404, code: 'RLY_ERR_UNKNOWN_HOST', error: 'Not Found', message: 'x' },
        { relayUrl: 'https://r:8443', host: 'nas' },
      ),
    );
    const lines = text.split('\n');
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines[0]).toMatch(/^mssh: no machine named nas .*\[CLI_ERR_UNKNOWN_HOST\]$/);
  });

  it('every code is documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(CLI_ERRORS)) expect(readme, code).toContain(code);
  });
});
