/**
 * Issue 17.10, through the real `mssh ssh` against a real relay, agents and OpenSSH sshd: the `.mssh`
 * alias, "did you mean" for mistyped machine names, and the connect timeout with its progress output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import pty from 'node-pty';
import xterm from '@xterm/headless';
import { waitFor } from './fixtures/net.js';
import { visibleScreen } from './fixtures/terminal.js';
import { fixtures } from './fixtures/inject.js';
import { BIN, loginUser, run, startAgent, startRelay, stopAll, type Relay, type User } from './fixtures/stack.js';

afterAll(stopAll);

describe('mssh ssh: names and the connect timeout', () => {
  let relay: Relay;
  let user: User;
  let silent: Server;
  const held: Socket[] = [];
  const key = () => fixtures().sshd.clientKey;
  const login = () => fixtures().sshd.user;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    await startAgent(relay, 'alpha');
    // `hung`: enrolled, online, but its "sshd" accepts the connection and never says a word.
    silent = createServer((c) => held.push(c));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const hung = await startAgent(relay, 'hung', { start: false });
    const p = run(BIN.agent, [
      'run',
      '--state-dir',
      hung.stateDir,
      '--target',
      `127.0.0.1:${(silent.address() as { port: number }).port}`,
      '--log-level',
      'info',
    ]);
    await p.waitOutput(/connected to relay/, 15_000, 'both');
    user = await loginUser(relay);
  }, 90_000);
  afterAll(() => {
    for (const c of held) c.destroy();
    silent?.close();
  });

  it('NAME.mssh (the OpenSSH alias) reaches NAME; -v prints each step, with no control characters off a terminal', async () => {
    const r = await user.mssh(['ssh', '-v', '-i', key(), `${login()}@alpha.mssh`, '--', 'echo', 'ok-$((1+1))']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ok-2\n');
    expect(r.stderr).toMatch(/^mssh: alpha\.mssh is the OpenSSH name of the machine alpha \(\+\d+ ms\)$/m);
    expect(r.stderr).toMatch(/^mssh: connecting to the relay https:\/\/127\.0\.0\.1:\d+ \(\+\d+ ms\)$/m);
    expect(r.stderr).toMatch(/^mssh: opening the tunnel to alpha \(\+\d+ ms\)$/m);
    expect(r.stderr).toMatch(/^mssh: SSH handshake with alpha \(\+\d+ ms\)$/m);
    expect(r.stderr).toMatch(/^mssh: SSH handshake done, host key accepted; authenticating as \S+ \(\+\d+ ms\)$/m);
    // eslint-disable-next-line no-control-regex -- asserts no CR or ESC is printed
    expect(r.stderr).not.toMatch(/[\r\x1b]/);
    // without -v and without a terminal: nothing at all on stderr
    const quiet = await user.mssh(['ssh', '-i', key(), `${login()}@alpha.mssh`, '--', 'true']);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  it('a mistyped machine name: the code, and "did you mean" with the close names from the relay', async () => {
    const r = await user.mssh(['ssh', '-i', key(), `${login()}@alpah`, '--', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/^mssh: .*alpah.* \[CLI_ERR_UNKNOWN_HOST\]\n/);
    expect(r.stderr).toMatch(/^Did you mean `alpha`\?.*mssh ls/m);
    // nothing close: no suggestion, the usual hint
    const far = await user.mssh(['ssh', '-i', key(), `${login()}@zzzzzz`, '--', 'true']);
    expect(far.code).toBe(255);
    expect(far.stderr).toMatch(/\[CLI_ERR_UNKNOWN_HOST\]/);
    expect(far.stderr).not.toMatch(/Did you mean/);
    // a DNS name is never a machine name: its first label is suggested
    const dns = await user.mssh(['ssh', `${login()}@alpha.example.com`, '--', 'true']);
    expect(dns.code).toBe(255);
    expect(dns.stderr).toMatch(
      /"alpha\.example\.com" is not a machine name \[CLI_ERR_BAD_HOST_NAME\]\nDid you mean `alpha`\?/,
    );
  });

  it('--connect-timeout and -o ConnectTimeout= give up on a machine whose sshd never answers, naming the step', async () => {
    for (const flag of [
      ['--connect-timeout', '2'],
      ['-o', 'ConnectTimeout=2'],
    ]) {
      const started = Date.now();
      const r = await user.mssh(['ssh', ...flag, '-v', '-i', key(), `${login()}@hung`, '--', 'true'], {
        timeoutMs: 60_000,
      });
      const took = Date.now() - started;
      expect(r.code, r.stderr).toBe(255);
      expect(r.stderr).toMatch(
        /^mssh: no SSH connection to hung within 2 s \(still SSH handshake with hung\) \[CLI_ERR_CONNECT_TIMEOUT\]\n/m,
      );
      expect(r.stderr).toMatch(/--connect-timeout SECONDS waits longer/);
      expect(r.stderr).toMatch(/^mssh: opening the tunnel to hung \(\+\d+ ms\)$/m);
      // it gave up at its limit, not at the 30 s default
      expect(took).toBeLessThan(25_000);
    }
  });

  it('on a terminal, a status line shows the step while it waits, and is erased before the error', async () => {
    const term = new xterm.Terminal({ cols: 100, rows: 10, allowProposedApi: true });
    let raw = '';
    let exit: number | null = null;
    const p = pty.spawn(
      process.execPath,
      [BIN.mssh, 'ssh', '--connect-timeout', '3', '-i', key(), `${login()}@hung`, '--', 'true'],
      {
        name: 'xterm-256color',
        cols: 100,
        rows: 10,
        cwd: process.cwd(),
        env: user.env,
      },
    );
    p.onData((d) => {
      raw += d;
      term.write(d);
    });
    p.onExit((e) => (exit = e.exitCode));
    try {
      await waitFor(
        () => /hung: SSH handshake with hung… \d s/.test(raw) || null,
        10_000,
        `the status line; output: ${JSON.stringify(raw)}`,
      );
      await waitFor(() => exit !== null || null, 15_000, 'mssh ssh exit');
      expect(exit).toBe(255);
      // The terminal parses what it was given asynchronously: wait for the last line, written after the erase.
      const screen = await waitFor(
        () => {
          const v = visibleScreen(term);
          return /\[CLI_ERR_CONNECT_TIMEOUT\]$/m.test(v) ? v : null;
        },
        5_000,
        `the final error line; output: ${JSON.stringify(raw)}`,
      );
      expect(screen).toMatch(
        /^mssh: no SSH connection to hung within 3 s \(still SSH handshake with hung\) \[CLI_ERR_CONNECT_TIMEOUT\]$/m,
      );
      expect(screen).not.toMatch(/SSH handshake with hung… \d s/); // erased
    } finally {
      if (exit === null) p.kill('SIGKILL');
    }
  });

  it('a connect timeout that is not whole seconds, or another -o, is a usage error with the fix', async () => {
    const bad = await user.mssh(['ssh', '--connect-timeout', 'soon', 'alpha', '--', 'true']);
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(
      /^mssh: --connect-timeout needs whole seconds from 1 to 3600, not "soon" \[CLI_ERR_USAGE\]\nFor example: mssh ssh --connect-timeout 10 laptop/,
    );
    const other = await user.mssh(['ssh', '-o', 'StrictHostKeyChecking=no', 'alpha', '--', 'true']);
    expect(other.code).toBe(255);
    expect(other.stderr).toMatch(
      /only -o ConnectTimeout=SECONDS, ServerAliveInterval=SECONDS and ServerAliveCountMax=N \[CLI_ERR_USAGE\]\nFor other OpenSSH options use OpenSSH itself/,
    );
  });
});
