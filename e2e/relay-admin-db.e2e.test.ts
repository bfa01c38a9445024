/**
 * Issue 17.1, through the built `mssh-relay`: an admin command never quietly acts on a database the
 * relay does not use. It goes through the running relay's admin socket and says so (pid, database); with
 * the relay stopped it opens only the database the data dir was started with (database.json, no
 * password); with no relay and no data dir it refuses instead of creating one; `info` shows the
 * database the relay really uses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { BIN, exec, loginUser, run, startRelay, stopAll, type Relay, type RunResult } from './fixtures/stack.js';
import { getFixtures as fixtures } from './fixtures/state.js';
import { createTestDatabase } from './fixtures/postgres.js';

afterAll(stopAll);

const SECRET = 'db-secret-pw-17';
const ALICE = 'alice-long-password';

/** The URL with a password (trust auth on the test server ignores it) and the form the relay may print. */
function withPassword(url: string): string {
  const u = new URL(url);
  u.password = SECRET;
  return u.toString();
}
const shown = (url: string) => {
  const u = new URL(url);
  u.password = '';
  return u.toString();
};

/** mssh-relay with a clean environment: no DATABASE_URL, no MSSH_DATA_DIR, HOME in a scratch dir. */
function relayCli(home: string) {
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'xdg'),
    DATABASE_URL: '',
    MSSH_DATA_DIR: '',
    MSSH_SSH_LISTEN: 'off',
  };
  return (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> =>
    exec(BIN.relay, args, { env: { ...env, ...opts.env }, input: opts.input, timeoutMs: 60_000 });
}

function scratchHome(): string {
  const home = mkdtempSync(join(fixtures().root, 'admin-home-'));
  mkdirSync(join(home, 'xdg'));
  return home;
}

describe('relay on Postgres with --data-dir D', () => {
  let relay: Relay;
  let dbUrl: string; // as the relay was started: with a password
  let other: string;
  let cli: ReturnType<typeof relayCli>;

  beforeAll(async () => {
    dbUrl = withPassword(await createTestDatabase(fixtures().runId));
    other = withPassword(await createTestDatabase(fixtures().runId));
    relay = await startRelay('postgres', [], { databaseUrl: dbUrl });
    cli = relayCli(scratchHome());
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('records the database in D/database.json (0600) without the password', () => {
    const path = join(relay.dataDir, 'database.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(SECRET);
    expect(JSON.parse(text)).toMatchObject({ kind: 'postgres', url: shown(dbUrl) });
  });

  it('(a) user add --data-dir D goes through the admin socket, names the relay pid and database; alice logs in', async () => {
    const r = await cli(['user', 'add', 'alice', '--password-stdin', '--data-dir', relay.dataDir], {
      input: `${ALICE}\n`,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      'Created user "alice".\nThey reach no machine until granted: mssh-relay grant alice \'PATTERN\'\n',
    );
    expect(r.stderr).toBe(
      `(relay pid ${relay.proc.child.pid} via admin socket ${join(relay.dataDir, 'admin.sock')}, database ${shown(dbUrl)})\n`,
    );
    expect(r.stderr + r.stdout).not.toContain(SECRET);
    await loginUser(relay, 'alice', ALICE); // throws unless `mssh login` succeeds against the running relay
    expect(existsSync(join(relay.dataDir, 'db'))).toBe(false); // no PGlite appeared beside the Postgres relay
  });

  it('--json output stays clean: the relay line is on stderr only', async () => {
    const r = await cli(['user', 'list', '--json', '--data-dir', relay.dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(
      JSON.parse(r.stdout)
        .map((u: { name: string }) => u.name)
        .sort(),
    ).toEqual(['admin', 'alice']);
    expect(r.stderr).toMatch(/^\(relay pid \d+ via admin socket .*\)\n$/);
  });

  it('a --database-url naming another database than the running relay uses is refused with both named', async () => {
    const r = await cli(['grant', 'alice', 'web-*', '--data-dir', relay.dataDir, '--database-url', other]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(r.stderr).toContain(shown(dbUrl));
    expect(r.stderr).toContain(shown(other));
    expect(r.stderr).not.toContain(SECRET);
    expect(r.stderr).toMatch(/--database-url/);
    const grants = await cli(['grants', '--json', '--data-dir', relay.dataDir]);
    expect(JSON.parse(grants.stdout)).toEqual([]);
  });

  it("(d) info shows the running relay's Postgres database, not PGlite", async () => {
    const r = await cli(['info', '--data-dir', relay.dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Data directory: ${relay.dataDir}\n`);
    expect(r.stdout).toContain(`Database: postgres ${shown(dbUrl)} (used by the running relay)\n`);
    expect(r.stdout).toContain(`Relay: running (pid ${relay.proc.child.pid})`);
    expect(r.stdout).not.toMatch(/pglite/i);
    expect(r.stdout).not.toContain(SECRET);
  });

  it('(c) stopped: no --database-url (PGlite) or another one is refused; the recorded one with its password works offline', async () => {
    await relay.proc.stop();
    const none = await cli(['user', 'list', '--data-dir', relay.dataDir]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(none.stderr).toContain(shown(dbUrl));
    expect(none.stderr).toContain(`PGlite ${join(relay.dataDir, 'db')}`);
    expect(none.stderr).toContain(`--database-url '${new URL(shown(dbUrl)).protocol}//postgres:PASSWORD@`);
    expect(existsSync(join(relay.dataDir, 'db'))).toBe(false);

    const wrong = await cli(
      ['user', 'add', 'mallory', '--password-stdin', '--data-dir', relay.dataDir, '--database-url', other],
      { input: 'mallory-password\n' },
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(wrong.stderr).toContain(shown(other));
    expect(wrong.stderr).not.toContain(SECRET);

    const right = await cli(['user', 'list', '--json', '--data-dir', relay.dataDir], { env: { DATABASE_URL: dbUrl } });
    expect(right.code, right.stderr).toBe(0);
    expect(
      JSON.parse(right.stdout)
        .map((u: { name: string }) => u.name)
        .sort(),
    ).toEqual(['admin', 'alice']);
    expect(right.stderr).toBe(
      `(relay not running: on the database directly, ${shown(dbUrl)}; data dir ${relay.dataDir})\n`,
    );

    const info = await cli(['info', '--data-dir', relay.dataDir]);
    expect(info.stdout).toContain(`Database: postgres ${shown(dbUrl)} (recorded by the last \`mssh-relay serve\`)\n`);
    expect(info.stdout).toContain('Relay: not running');
  });

  it('serve on D without the recorded database is refused too (no empty PGlite relay with a new admin)', async () => {
    const r = await cli(['serve', '--listen', '127.0.0.1:0', '--data-dir', relay.dataDir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(r.stderr).toContain(join(relay.dataDir, 'database.json'));
    expect(existsSync(join(relay.dataDir, 'db'))).toBe(false);
  });
});

describe('relay on PGlite', () => {
  let relay: Relay;
  let cli: ReturnType<typeof relayCli>;
  beforeAll(async () => {
    relay = await startRelay('pglite');
    cli = relayCli(scratchHome());
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('a --database-url is refused while it runs and when stopped; without one it works both ways', async () => {
    const pgUrl = await createTestDatabase(fixtures().runId);
    const running = await cli(['user', 'list', '--data-dir', relay.dataDir, '--database-url', pgUrl]);
    expect(running.code).toBe(1);
    expect(running.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(running.stderr).toContain(`PGlite ${join(relay.dataDir, 'db')}`);
    const ok = await cli(['user', 'list', '--data-dir', relay.dataDir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(`database PGlite ${join(relay.dataDir, 'db')})`);

    await relay.proc.stop();
    const stopped = await cli(['keys', 'rotate', '--data-dir', relay.dataDir], { env: { DATABASE_URL: pgUrl } });
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(stopped.stderr).toMatch(/unset DATABASE_URL/);
    const offline = await cli(['user', 'list', '--data-dir', relay.dataDir]);
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stderr).toBe(
      `(relay not running: on the database directly, PGlite ${join(relay.dataDir, 'db')}; data dir ${relay.dataDir})\n`,
    );
  });
});

describe('no relay and no data dir', () => {
  it('(b) admin commands refuse with RLY_CLI_ERR_NO_DATA_DIR and create nothing (default dir or --data-dir)', async () => {
    const home = scratchHome();
    const cli = relayCli(home);
    const dflt = join(home, '.local', 'share', 'mssh-relay');
    for (const args of [
      ['user', 'add', 'alice', '--password-stdin'],
      ['agent', 'enroll', 'laptop'],
      ['grants'],
      ['keys', 'rotate'],
    ]) {
      const r = await cli(args, { input: `${ALICE}\n` });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain(`no relay data directory at ${dflt} (the default for user `);
      expect(lines[0]).toContain('[RLY_CLI_ERR_NO_DATA_DIR]');
      expect(lines[1]).toMatch(/mssh-relay serve.*--data-dir/);
    }
    expect(readdirSync(home)).toEqual(['xdg']); // no ~/.local/share/mssh-relay
    expect(readdirSync(join(home, 'xdg'))).toEqual([]);

    // An existing but empty directory is not a relay's either.
    const empty = join(home, 'empty');
    mkdirSync(empty);
    const r = await cli(['user', 'list', '--data-dir', empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no relay has been started with the data directory ${empty}`);
    expect(r.stderr).toContain('RLY_CLI_ERR_NO_DATA_DIR');
    expect(readdirSync(empty)).toEqual([]);

    // A data dir of an older version (relay-id, no database.json) and no PGlite in it: its relay runs on
    // Postgres, so opening PGlite there (creating an empty one) is refused.
    const legacy = join(home, 'legacy');
    mkdirSync(legacy, { mode: 0o700 });
    writeFileSync(join(legacy, 'relay-id'), `${randomUUID()}\n`);
    const old = await cli(['user', 'list', '--data-dir', legacy]);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain('does not use PGlite');
    expect(old.stderr).toContain('RLY_CLI_ERR_DATABASE_MISMATCH');
    expect(readdirSync(legacy)).toEqual(['relay-id']);

    const info = await cli(['info']);
    expect(info.code).toBe(0);
    expect(info.stdout).toContain(`Data directory: ${dflt} (the default for user `);
    expect(info.stdout).toContain('(does not exist yet)');
    expect(existsSync(dflt)).toBe(false);
  });

  it('serve still creates the default data dir; then admin commands without --data-dir find its relay', async () => {
    const home = scratchHome();
    const cli = relayCli(home);
    const dbUrl = await createTestDatabase(fixtures().runId);
    const dflt = join(home, '.local', 'share', 'mssh-relay');
    const serve = run(BIN.relay, ['serve', '--listen', '127.0.0.1:0', '--log-level', 'warn'], {
      env: {
        ...process.env,
        HOME: home,
        DATABASE_URL: dbUrl,
        MSSH_DATA_DIR: '',
        MSSH_SSH_LISTEN: 'off',
        MSSH_BOOTSTRAP_PASSWORD: 'bootstrap-password-17',
      },
    });
    try {
      await serve.waitOutput(/TLS certificate fingerprint: /, 30_000, 'out');
      expect(statSync(dflt).mode & 0o777).toBe(0o700);
      const r = await cli(['user', 'add', 'bob', '--password-stdin'], { input: 'bob-long-password\n' });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe(
        `(relay pid ${serve.child.pid} via admin socket ${join(dflt, 'admin.sock')}, database ${dbUrl})\n`,
      );
      const info = await cli(['info']);
      expect(info.stdout).toContain(`Data directory: ${dflt} (the default for user `);
      expect(info.stdout).toContain(`Database: postgres ${dbUrl} (used by the running relay)`);
    } finally {
      await serve.stop();
    }
  });
});
