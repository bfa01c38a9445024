/**
 * Issue 5, as a user runs it: the real `mssh-tui` bin in a pseudo-terminal (node-pty), its screen read
 * back through a headless xterm, against a real relay, agents and OpenSSH sshd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { PATHS, PROTOCOL_VERSION } from '@mssh/protocol';
import pty from 'node-pty';
import xterm from '@xterm/headless';
import { fixtures } from './fixtures/inject.js';
import { waitFor } from './fixtures/net.js';
import { visibleScreen } from './fixtures/terminal.js';
import { makeHostKeys } from './fixtures/sshd.js';
import { h2From, postJson } from './fixtures/h2-raw.js';
import {
  ADMIN_PASSWORD,
  BIN,
  loginUser,
  startAgent,
  startRelay,
  stopAll,
  type Agent,
  type Relay,
  type User,
} from './fixtures/stack.js';

const TUI = BIN.tui;

afterAll(stopAll);

/** The TUI in a pty, run by `sh -c` so that `stty -a` can show the terminal after it exits. */
class TuiTerm {
  readonly term: InstanceType<typeof xterm.Terminal>;
  readonly proc: pty.IPty;
  raw = '';
  exited = false;
  constructor(env: NodeJS.ProcessEnv, args: string[], cols = 100, rows = 30) {
    this.term = new xterm.Terminal({ cols, rows, allowProposedApi: true, scrollback: 200 });
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(TUI)} ${args.map((a) => JSON.stringify(a)).join(' ')}; echo "TUI-EXIT=$?"; stty -a`;
    this.proc = pty.spawn('/bin/sh', ['-c', cmd], { name: 'xterm-256color', cols, rows, cwd: process.cwd(), env });
    this.proc.onData((d) => {
      this.raw += d;
      this.term.write(d);
    });
    this.proc.onExit(() => (this.exited = true));
  }
  screen(): string {
    return visibleScreen(this.term);
  }
  /** The text of the list row shown in inverse video (the picker's selection), or null. */
  selectedRow(): string | null {
    const b = this.term.buffer.active;
    for (let y = 3; y < this.term.rows - 2; y++) {
      const line = b.getLine(b.viewportY + y);
      if (line?.getCell(0)?.isInverse() && line.getCell(2)?.isInverse()) return line.translateToString(true);
    }
    return null;
  }
  /** Everything in the buffer (scrollback included), for output that scrolled. */
  all(): string {
    const b = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  }
  async until(test: (screen: string) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(() => test(this.screen()) || null, timeoutMs, `${what}; screen was:\n${this.screen()}`);
  }
  type(s: string): void {
    this.proc.write(s);
  }
  resize(cols: number, rows: number): void {
    this.term.resize(cols, rows);
    this.proc.resize(cols, rows);
  }
  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

function envFor(user: User): NodeJS.ProcessEnv {
  const home = join(user.configDir, 'home');
  mkdirSync(home, { recursive: true });
  return { ...user.env, HOME: home, TERM: 'xterm-256color', LANG: 'C.UTF-8', XDG_STATE_HOME: join(home, 'state') };
}

/** Writes text captures for the README when MSSH_TUI_CAPTURE_DIR is set. */
function capture(name: string, text: string): void {
  const dir = process.env.MSSH_TUI_CAPTURE_DIR;
  if (dir) writeFileSync(join(dir, `${name}.txt`), text.replace(/\s+$/gm, '') + '\n');
}

describe('mssh-tui', () => {
  let relay: Relay;
  let user: User;
  let bravo: Agent;
  const open: TuiTerm[] = [];

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'alpha');
    bravo = await startAgent(relay, 'bravo');
    user = await loginUser(relay);
  });
  afterAll(() => {
    for (const t of open) t.kill();
  });

  it('lists, filters, opens a shell with full terminal handoff, comes back, shows offline, restores the terminal', async () => {
    const t = new TuiTerm(envFor(user), ['-i', fixtures().sshd.clientKey]);
    open.push(t);
    await t.until((s) => /online\s+alpha/.test(s) && /online\s+bravo/.test(s), 'both machines listed online', 15_000);
    capture('picker', t.screen());

    t.type('al');
    await t.until(
      (s) => /Filter: al/.test(s) && /alpha/.test(s) && !/bravo/.test(s),
      'filter narrows the list to alpha',
    );

    t.type('\r');
    await t.until((s) => !/Filter:/.test(s), 'the picker hands the terminal to the shell');
    t.type('echo $((6*7))\r');
    await t.until((s) => /^42\s*$/m.test(s), '42 from the remote shell');

    t.resize(120, 40);
    t.type('stty size\r');
    await t.until((s) => /^40 120\s*$/m.test(s), 'stty size in the remote shell prints 40 120');

    // q (and j/k, ?) belong to the shell while it runs.
    t.type('echo q$((2+3))q\r');
    await t.until((s) => /^q5q\s*$/m.test(s), 'q reaches the remote shell');

    // Ctrl-C interrupts the remote command, not the picker.
    t.type('sleep 30\r');
    await new Promise((r) => setTimeout(r, 300));
    t.type('\x03');
    t.type('echo c$((3+4))c\r');
    await t.until((s) => /^c7c\s*$/m.test(s), 'Ctrl-C reaches the remote side');

    t.type('exit\r');
    await t.until(
      (s) => /Filter: al/.test(s) && /online\s+alpha/.test(s) && /ended \(exit 0\)/.test(s),
      'picker back with the filter kept',
    );
    expect(t.screen()).not.toMatch(/bravo/);

    // Clear the filter; take bravo's agent down: the live refresh shows it offline within 3 s.
    t.type('\x1b');
    await t.until((s) => /online\s+bravo/.test(s), 'filter cleared');
    await bravo.proc.stop();
    await t.until((s) => /offline\s+bravo/.test(s), 'bravo offline within 3 s', 3_000);

    // Help, and the login user for the selected machine (remembered in the config dir).
    t.type('?');
    await t.until((s) => /Press any key to close/.test(s), 'help');
    t.type(' ');
    await t.until((s) => !/Press any key to close/.test(s), 'help closed');
    t.type('j');
    await t.until((s) => /login: root@bravo/.test(s), 'bravo selected');
    t.type('u');
    await t.until((s) => /Login user for bravo/.test(s), 'user prompt');
    t.type('\x15deploy\r');
    await t.until((s) => /login: deploy@bravo/.test(s), 'user set');
    expect(JSON.parse(readFileSync(join(user.configDir, 'tui-users.json'), 'utf8')).hosts).toEqual({ bravo: 'deploy' });

    t.type('q');
    await waitFor(
      () =>
        (/TUI-EXIT=0[\s\S]*\bspeed\b[\s\S]*\bicanon\b/.test(t.raw) && t.term.buffer.active.type === 'normal') || null,
      10_000,
      `mssh-tui exit and stty -a; output:\n${t.raw.slice(-2000)}`,
    );
    const stty = t.raw.slice(t.raw.indexOf('TUI-EXIT=0'));
    expect(stty).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(stty).toMatch(/(^|\s)echo(\s|$)/m);
    expect(t.term.buffer.active.type).toBe('normal');
    expect(t.raw.lastIndexOf('\x1b[?25h')).toBeGreaterThan(t.raw.lastIndexOf('\x1b[?25l'));
  });

  it('refuses a changed host key with the warning screen and does not connect', async () => {
    const other = await loginUser(relay);
    const keyDir = mkdtempSync(join(fixtures().root, 'tui-otherkey-'));
    const { pubs } = makeHostKeys(keyDir, 'other');
    appendFileSync(join(other.configDir, 'known_hosts'), `alpha ${pubs[0]}\n`, { mode: 0o600 });
    const t = new TuiTerm(envFor(other), ['--host', 'alpha', '-i', fixtures().sshd.clientKey]);
    open.push(t);
    await t.until(
      (s) => /HOST KEY FOR alpha HAS CHANGED/.test(s) && /mssh known-hosts forget alpha/.test(s),
      'host key warning screen',
      15_000,
    );
    expect(t.screen()).toMatch(/Pinned before:\s+SHA256:/);
    expect(t.screen()).toMatch(/Presented now:\s+SHA256:/);
    capture('host-key-warning', t.screen());
    t.type('\r');
    await t.until(
      (s) => /Not connected to alpha/.test(s) && /online\s+alpha/.test(s),
      'back to the picker, not connected',
    );
    expect(t.screen()).toMatch(/MINE[\s\S]*alpha\s+-\s+now\s+0\s/);
    // SIGTERM restores the terminal too.
    const pid = Number(
      execFileSync('pgrep', ['-P', String(t.proc.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')[0],
    );
    process.kill(pid, 'SIGTERM');
    await waitFor(
      () => (/TUI-EXIT=143[\s\S]*\bicanon\b/.test(t.raw) && t.term.buffer.active.type === 'normal') || null,
      10_000,
      `mssh-tui exit on SIGTERM; screen:\n${t.screen()}`,
    );
    expect(t.raw.slice(t.raw.indexOf('TUI-EXIT=143'))).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(t.term.buffer.active.type).toBe('normal');
    expect(t.raw.lastIndexOf('\x1b[?25h')).toBeGreaterThan(t.raw.lastIndexOf('\x1b[?25l'));
  });

  it('asks for a key passphrase in a modal, then connects (--host) and comes back to the picker', async () => {
    const dir = mkdtempSync(join(fixtures().root, 'tui-enckey-'));
    const key = join(dir, 'id_ed25519');
    copyFileSync(fixtures().sshd.clientKey, key);
    chmodSync(key, 0o600);
    execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'tui-passphrase', '-f', key], { stdio: 'ignore' });
    const t = new TuiTerm(envFor(user), ['--host', 'alpha.mssh', '-i', key]); // NAME.mssh, the OpenSSH alias, is NAME
    open.push(t);
    await t.until((s) => /Authentication/.test(s) && /passphrase/.test(s), 'passphrase modal', 15_000);
    t.type('tui-passphrase\r');
    await t.until((s) => !/Filter:/.test(s), 'shell after the passphrase');
    t.type('echo pass$((1+1))ok\r');
    await t.until((s) => /^pass2ok\s*$/m.test(s), 'remote shell output');
    t.type('exit\r');
    // MINE counts the sessions open now: back to 0 once the shell ended.
    await t.until(
      (s) => /ended \(exit 0\)/.test(s) && /alpha\s+-\s+now\s+0\s/.test(s),
      'picker back, no session of mine open',
    );
    expect(t.all()).not.toContain('tui-passphrase');
    t.type('q');
    await waitFor(() => /TUI-EXIT=0/.test(t.raw) || null, 10_000, 'mssh-tui exit');
  });

  it("after a session and q, the shell continues below the session's last output, not over it", async () => {
    const t = new TuiTerm(envFor(user), ['-i', fixtures().sshd.clientKey]);
    open.push(t);
    await t.until((s) => /online\s+alpha/.test(s), 'alpha listed', 15_000);
    t.type('alpha\r');
    await t.until((s) => !/Filter:/.test(s), 'the remote shell', 15_000);
    t.type('echo LEFT$((40+2))OVER\r');
    await t.until((s) => /^LEFT42OVER\s*$/m.test(s), 'remote output');
    t.type('exit\r');
    await t.until((s) => /ended \(exit 0\)/.test(s) && /Filter: alpha/.test(s), 'picker back');
    t.type('\x1b');
    await t.until((s) => /Filter:\s+login:/.test(s), 'filter cleared');
    t.type('q');
    await waitFor(
      () => (/TUI-EXIT=0[\s\S]*\bicanon\b/.test(t.raw) && t.term.buffer.active.type === 'normal') || null,
      10_000,
      `mssh-tui exit; output:\n${t.raw.slice(-2000)}`,
    );
    // The main screen as the session left it (like after `ssh`), and the next output below it, not over
    // it: before the fix the cursor came back at the top left and TUI-EXIT=0 overwrote the first line.
    const after = t.screen().split('\n');
    expect(after.join('\n')).not.toMatch(/Filter:|Enter connect/);
    const left = after.findIndex((l) => l === 'LEFT42OVER');
    const exitLine = after.findIndex((l) => l.startsWith('TUI-EXIT=0'));
    expect(left, after.join('\n')).toBeGreaterThanOrEqual(0);
    expect(after[exitLine], after.join('\n')).toBe('TUI-EXIT=0');
    expect(exitLine).toBeGreaterThan(left);
    expect(after.slice(0, exitLine).some((l) => l.includes('TUI-EXIT'))).toBe(false);
  });

  it('says it is loading (not "0/0 machines, no machines yet") until the relay\'s first list arrives', async () => {
    // A "relay" that accepts the connection and never answers: the first list never comes.
    const held: Socket[] = [];
    const silent = createServer((c) => held.push(c));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `https://127.0.0.1:${(silent.address() as { port: number }).port}`;
      const dir = mkdtempSync(join(fixtures().root, 'tui-loading-'));
      const entry = {
        url,
        fingerprint: `SHA256:${'A'.repeat(43)}`,
        token: 'not-a-real-token',
        user: 'admin',
        admin: true,
        expiresAt: '2999-01-01T00:00:00.000Z',
      };
      writeFileSync(
        join(dir, 'credentials.json'),
        JSON.stringify({ version: 1, current: url, relays: { [url]: entry } }),
        { mode: 0o600 },
      );
      const t = new TuiTerm(
        { ...process.env, MSSH_CONFIG_DIR: dir, SSH_AUTH_SOCK: '', HOME: dir, TERM: 'xterm-256color' },
        [],
      );
      open.push(t);
      await t.until(
        (s) => /loading machines…/.test(s) && /Loading the machines from https:\/\/127\.0\.0\.1/.test(s),
        'loading state',
        10_000,
      );
      expect(t.screen()).not.toMatch(/0\/0 machines|no machines yet/);
      // The connection attempt times out (5 s): the banner, and still no claim that there are no machines.
      await t.until((s) => /Relay unreachable/.test(s), 'relay unreachable banner', 15_000);
      expect(t.screen()).toMatch(/no list yet/);
      expect(t.screen()).not.toMatch(/0\/0 machines|no machines yet/);
      t.type('q');
      await waitFor(() => /TUI-EXIT=0/.test(t.raw) || null, 10_000, 'mssh-tui exit');
    } finally {
      for (const c of held) c.destroy();
      silent.close();
    }
  });

  it('shows the login form when the stored login has expired, prefilled, then the picker', async () => {
    const dir = mkdtempSync(join(fixtures().root, 'tui-expired-'));
    const creds = JSON.parse(readFileSync(join(user.configDir, 'credentials.json'), 'utf8')) as {
      relays: Record<string, { expiresAt?: string }>;
    };
    for (const r of Object.values(creds.relays)) r.expiresAt = '2000-01-01T00:00:00.000Z';
    writeFileSync(join(dir, 'credentials.json'), JSON.stringify(creds), { mode: 0o600 });
    const t = new TuiTerm(
      { ...process.env, MSSH_CONFIG_DIR: dir, SSH_AUTH_SOCK: '', HOME: dir, TERM: 'xterm-256color' },
      [],
    );
    open.push(t);
    await t.until(
      (s) => /expired/.test(s) && /Relay URL: https:\/\/127\.0\.0\.1/.test(s) && /User: admin/.test(s),
      'login form, prefilled',
      15_000,
    );
    t.type(`\r\r${ADMIN_PASSWORD}\r`);
    await t.until((s) => /online\s+alpha/.test(s) && /Logged in to/.test(s), 'picker after login', 15_000);
    t.type('q');
    await waitFor(() => /TUI-EXIT=0/.test(t.raw) || null, 10_000, 'mssh-tui exit');
  });

  it('asks for a login in the TUI when not logged in, then shows the picker', async () => {
    const dir = mkdtempSync(join(fixtures().root, 'tui-nologin-'));
    const t = new TuiTerm(
      { ...process.env, MSSH_CONFIG_DIR: dir, SSH_AUTH_SOCK: '', HOME: dir, TERM: 'xterm-256color' },
      [],
    );
    open.push(t);
    await t.until((s) => /Log in to a relay/.test(s) && /Relay URL:/.test(s), 'login form', 15_000);
    t.type(`${relay.url}\r`);
    t.type('\x15admin\r');
    t.type(`${ADMIN_PASSWORD}\r`);
    await t.until((s) => /online\s+alpha/.test(s) && /Logged in to/.test(s), 'picker after login', 15_000);
    expect(t.screen()).not.toContain(ADMIN_PASSWORD);

    // The relay goes away and comes back: a banner, retries, no stack trace, then the list again.
    await relay.proc.stop();
    await t.until((s) => /Relay unreachable/.test(s), 'relay unreachable banner', 10_000);
    capture('relay-unreachable', t.screen());
    expect(t.all()).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/);
    await relay.restart();
    await t.until(
      (s) => !/Relay unreachable/.test(s) && /Relay reachable again/.test(s) && /alpha/.test(s),
      'banner gone after the relay is back',
      15_000,
    );
    t.type('q');
    await waitFor(() => /TUI-EXIT=0/.test(t.raw) || null, 10_000, 'mssh-tui exit');
  });
});

/**
 * Issue 17.7: with 301 machines the filter selects its best match. The relay lists enrolled machines
 * whether online or not, so the names are enrolled through the admin API and POST /v1/agents/enroll
 * (a fresh identity key each) without running 301 agents.
 */
describe('mssh-tui with 301 machines', () => {
  let relay: Relay;
  let user: User;
  const open: TuiTerm[] = [];
  const names = Array.from({ length: 301 }, (_, i) => `web-${String(i).padStart(3, '0')}`);

  beforeAll(async () => {
    relay = await startRelay('pglite');
    user = await loginUser(relay);
    const creds = JSON.parse(readFileSync(join(user.configDir, 'credentials.json'), 'utf8')) as {
      relays: Record<string, { token: string }>;
    };
    const token = Object.values(creds.relays)[0]!.token;
    const h2 = await h2From(relay);
    try {
      for (let i = 0; i < names.length; i += 20) {
        await Promise.all(
          names.slice(i, i + 20).map(async (name) => {
            const t = await postJson(h2, '/v1/admin/agents/enroll', { name }, { authorization: `Bearer ${token}` });
            if (t.status !== 201) throw new Error(`enrolment token for ${name}: ${t.status} ${t.text}`);
            const publicKey = generateKeyPairSync('ed25519')
              .publicKey.export({ format: 'der', type: 'spki' })
              .toString('base64');
            const e = await postJson(h2, PATHS.enroll, {
              token: t.body.token,
              name,
              publicKey,
              hostKeys: [],
              agentVersion: '0.0.0-test',
              protocolVersion: PROTOCOL_VERSION,
            });
            if (e.status !== 200 && e.status !== 201) throw new Error(`enrol ${name}: ${e.status} ${e.text}`);
          }),
        );
      }
    } finally {
      h2.close();
    }
  }, 120_000);
  afterAll(() => {
    for (const t of open) t.kill();
  });

  it('selects the best match after each filter change; Home/End; Tab sets the user while filtering', async () => {
    const t = new TuiTerm(envFor(user), []);
    open.push(t);
    await t.until((s) => /301\/301 machines/.test(s), 'all 301 machines listed', 20_000);
    expect(t.selectedRow()).toMatch(/^offline\s+web-000\s/);
    // As in the report: the selection somewhere down the list (16th row) before typing.
    t.type('j'.repeat(15));
    await t.until((s) => /login: \S+@web-015/.test(s), 'web-015 selected');

    t.type('w29');
    await t.until((s) => /Filter: w29/.test(s) && /login: \S+@web-029/.test(s), 'w29 selects web-029', 5_000);
    expect(t.selectedRow()).toMatch(/^offline\s+web-029\s/);
    // best first: the first row is the selected one
    expect(t.screen().split('\n')[3]).toMatch(/^offline\s+web-029\s/);

    t.type('\x1b');
    await t.until((s) => /Filter:\s+login: \S+@web-029/.test(s), 'Esc clears the filter and keeps the selection');
    t.type('web-15');
    await t.until(
      (s) => /Filter: web-15/.test(s) && /login: \S+@web-150/.test(s),
      'web-15 selects web-150 (prefix)',
      5_000,
    );
    expect(t.selectedRow()).toMatch(/^offline\s+web-150\s/);
    t.type('\x7f\x7f'); // Backspace twice: "web-"
    await t.until((s) => /Filter: web- /.test(s) && /login: \S+@web-000/.test(s), 'web- selects web-000', 5_000);

    t.type('\x1b[F'); // End
    await t.until((s) => /login: \S+@web-300/.test(s), 'End selects the last row');
    expect(t.selectedRow()).toMatch(/^offline\s+web-300\s/);
    t.type('\x1b[H'); // Home
    await t.until((s) => /login: \S+@web-000/.test(s), 'Home selects the first row');

    // Tab: the login user while a filter is typed (u would be a filter letter)
    t.type('\t');
    await t.until((s) => /Login user for web-000/.test(s), 'user prompt while filtering');
    t.type('\x15ops\r');
    await t.until((s) => /login: ops@web-000/.test(s) && /Filter: web-/.test(s), 'user set, filter kept');
    t.type('\x03');
    await waitFor(() => /TUI-EXIT=0/.test(t.raw) || null, 10_000, 'mssh-tui exit');
  });
});

describe('mssh-tui: a session an admin ends says why (issue 17 item 5)', () => {
  let relay: Relay;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'alpha');
    expect((await relay.cli(['user', 'add', 'tess', '--password-stdin'], 'tess-password-1\n')).code).toBe(0);
    expect((await relay.cli(['grant', 'tess', 'alpha'])).code).toBe(0);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('disabled with --kill-sessions while in a shell: the picker comes back saying the account was disabled by an admin', async () => {
    const tess = await loginUser(relay, 'tess', 'tess-password-1');
    // Wide enough for the whole status line.
    const t = new TuiTerm(envFor(tess), ['--host', 'alpha', '-i', fixtures().sshd.clientKey], 200, 30);
    try {
      // --host connects at once: the remote prompt (nothing of the picker) is the shell being ready.
      await t.until((s) => s.trim() !== '' && !/Filter:/.test(s) && /[$#>]\s*$/m.test(s), 'the shell prompt', 20_000);
      t.type('echo in$((2*3))side\r');
      await t.until((s) => /^in6side\s*$/m.test(s), 'remote shell output');
      const d = await relay.cli(['user', 'disable', 'tess', '--kill-sessions']);
      expect(d.code, d.stderr).toBe(0);
      // The picker comes back with the reason on its status line (blessed draws it in one piece).
      await t.until(
        (s) =>
          /the session to alpha was ended: your account on \S+ was disabled by an admin \[CLI_ERR_ACCOUNT_DISABLED\]/.test(
            s,
          ),
        'the reason on the status line',
        5_000,
      );
      expect(t.screen()).not.toMatch(/gone offline|was lost/);
      // The list refresh is refused too: the banner says why, not that the relay is unreachable.
      await t.until(
        (s) => /your account on \S+ was disabled by an admin \[CLI_ERR_ACCOUNT_DISABLED\]; Ask an admin/.test(s),
        'the banner',
        5_000,
      );
      expect(t.screen()).not.toMatch(/Relay unreachable/);
    } finally {
      t.kill();
    }
  });
});
