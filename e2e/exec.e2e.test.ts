/**
 * Issue 21 (`mssh exec`): one command on many machines through one relay connection. Three agents in front
 * of the shared sshd plus one enrolled machine whose agent is not running; the built `mssh` against a real
 * relay (PGlite). Prefixed output, --stdin, exit codes, selector errors, an offline machine (reported, not
 * waited for), a changed host key (that machine fails, the others run), 20 MB of output (streamed: the
 * first lines arrive while the command still runs; --json caps it and says truncated), Ctrl-C (exit 130,
 * every session ended and audited), and `mssh admin audit --run ID`.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionInfo } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import {
  BIN,
  adminAuditEvents,
  loginUser,
  run,
  startAgent,
  startRelay,
  stopAll,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

/** Established TCP connections of process `pid` to the loopback `port` (its socket fds matched in /proc/net/tcp*). */
function tcpConnectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = readFileSync(table, 'utf8').split('\n').slice(1);
    for (const row of rows) {
      const c = row.trim().split(/\s+/);
      if (c.length > 9 && c[2]!.endsWith(hexPort) && c[3] === '01' && inodes.has(c[9]!)) n++;
    }
  }
  return n;
}

describe('mssh exec: one command on many machines (PGlite)', () => {
  let relay: Relay;
  let admin: User;
  let login: string[];

  const runIdOf = (stderr: string): string => {
    const m = stderr.match(/\(run ([0-9a-f]{16})\)/);
    expect(m, stderr).not.toBeNull();
    return m![1]!;
  };

  beforeAll(async () => {
    relay = await startRelay('pglite');
    admin = await loginUser(relay);
    await Promise.all([
      startAgent(relay, 'ex-a', { labels: ['grp=x'] }),
      startAgent(relay, 'ex-bb', { labels: ['grp=x'] }),
      startAgent(relay, 'ex-c', { labels: ['grp=x'] }),
      startAgent(relay, 'ex-off', { start: false }),
    ]);
    const f = fixtures();
    login = ['-l', f.sshd.user, '-i', f.sshd.clientKey];
  }, 60_000);
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('runs on every selected machine: prefixed, aligned lines, --stdin to each, exit 0; a failing command or --timeout exits 1', async () => {
    const r = await admin.mssh(['exec', 'grp=x', ...login, '--stdin', '--', 'echo', 'one;', 'cat;', 'printf', 'tail'], {
      input: 'from stdin\n',
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean).sort();
    expect(lines).toEqual(
      ['ex-a:  ', 'ex-bb: ', 'ex-c:  '].flatMap((p) => [`${p}from stdin`, `${p}one`, `${p}tail`]).sort(),
    );
    expect(r.stderr).toMatch(/^mssh exec: 3 machines: 3 ok in [\d.]+ s \(run [0-9a-f]{16}\)$/m);

    const failed = await admin.mssh(['exec', 'ex-a', 'ex-c', ...login, '--', 'exit 3']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/2 machines: 0 ok, 2 failed/);
    expect(failed.stderr).toMatch(/failed: +ex-a \(exit 3\), ex-c \(exit 3\)/);

    // --timeout: the machine is given up (its tunnel reset) after 1 s, reported timed out, exit 1.
    const t0 = Date.now();
    const slow = await admin.mssh(['exec', 'ex-a', ...login, '--timeout', '1', '--', 'sleep', '20']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toMatch(/1 machine: 0 ok, 1 timed out/);
    expect(slow.stderr).toMatch(/ex-a did not finish within 1 s \(--timeout\) \[CLI_ERR_MACHINE_TIMEOUT\]/);
  });

  it('bad selectors: a bad label (exit 2, CLI_ERR_BAD_LABEL), nothing matched (exit 2, CLI_ERR_NO_MATCH), no command (64)', async () => {
    const bad = await admin.mssh(['exec', 'Grp=x', '--', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/rule key_syntax.*\[CLI_ERR_BAD_LABEL\]/);
    const none = await admin.mssh(['exec', 'nope-*', 'grp=x', '--', 'true']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/matches none of the 4 machines you may reach \[CLI_ERR_NO_MATCH\]/);
    expect(none.stderr).toMatch(/mssh ls/);
    const noCommand = await admin.mssh(['exec', 'grp=x', 'uptime']);
    expect(noCommand.code).toBe(64);
    expect(noCommand.stderr).toMatch(/no command to run \[CLI_ERR_USAGE\]/);
    const both = await admin.mssh(['exec', '--all', 'ex-a', '--', 'true']);
    expect(both.code).toBe(64);
    const parallel = await admin.mssh(['exec', '--all', '--parallel', '0', '--', 'true']);
    expect(parallel.stderr).toMatch(/--parallel needs a whole number from 1 to 1024.*\[CLI_ERR_USAGE\]/);
  });

  it('an offline machine is reported unreachable at once; a changed host key fails that machine only (exit 255)', async () => {
    // Pin another key for ex-bb, as if its SSH server's key had changed since the user first reached it.
    const dir = mkdtempSync(join(fixtures().root, 'exec-key-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
    const other = readFileSync(join(dir, 'k.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = join(admin.configDir, 'known_hosts');
    expect((await admin.mssh(['known-hosts', 'forget', 'ex-bb'])).code).toBe(0);
    appendFileSync(knownHosts, `ex-bb ${other}\n`);
    const t0 = Date.now();
    const r = await admin.mssh(['exec', 'ex-*', ...login, '--timeout', '20', '--', 'echo', 'ok']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code, r.stderr).toBe(255);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['ex-a:   ok', 'ex-c:   ok']);
    expect(r.stderr).toMatch(/4 machines: 2 ok, 1 unreachable, 1 error/);
    expect(r.stderr).toMatch(/unreachable: +ex-off \(CLI_ERR_HOST_OFFLINE\)/);
    expect(r.stderr).toMatch(/error: +ex-bb \(CLI_ERR_HOST_KEY_CHANGED\)/);
    expect(r.stderr).toMatch(/mssh known-hosts forget ex-bb/);
    // Forgotten, the machine is pinned again from the relay's attestation and runs.
    const forget = await admin.mssh(['known-hosts', 'forget', 'ex-bb']);
    expect(forget.code, forget.stderr).toBe(0);
    const again = await admin.mssh(['exec', 'ex-bb', ...login, '--', 'echo', 'ok']);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(knownHosts, 'utf8')).not.toContain(other);
  });

  it('20 MB of output streams through (first lines before the command ends, every byte counted); --json caps at 1 MiB', async () => {
    const big = 'head -c 20000000 /dev/zero | tr "\\0" x | fold -w 999';
    const p = run(BIN.mssh, ['exec', 'ex-a', ...login, '--', `${big};`, 'sleep', '3'], { env: admin.env });
    p.child.stdin!.end();
    // 20 MB are out while the remote command still sleeps: nothing was held back until the end (only the
    // partial last line of 20 bytes waits for the end of the stream).
    await waitFor(() => p.out.length >= 20_000_000 || null, 15_000, 'the output before the command ends');
    expect(p.running).toBe(true);
    expect(await p.exited).toBe(0);
    const lines = p.out.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(20_021);
    expect(lines.every((l) => /^ex-a: x{1,999}$/.test(l))).toBe(true);
    expect(lines.reduce((n, l) => n + l.length - 'ex-a: '.length, 0)).toBe(20_000_000);

    const j = await admin.mssh(['exec', 'ex-a', ...login, '--json', '--', big], { timeoutMs: 30_000 });
    expect(j.code, j.stderr).toBe(0);
    const objs = j.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objs.map((o) => o.name)).toEqual(['ex-a']);
    for (const o of objs) {
      expect(o).toMatchObject({
        result: 'ok',
        exit_code: 0,
        signal: null,
        stdout_bytes: 20_020_020,
        stdout_truncated: true,
        stderr: '',
        stderr_truncated: false,
        error: null,
      });
      expect((o.stdout as string).length).toBe(1024 * 1024);
      expect(o.duration_ms).toBeGreaterThan(0);
    }

    const dir = join(mkdtempSync(join(fixtures().root, 'exec-out-')), 'out');
    const d = await admin.mssh(['exec', 'grp=x', ...login, '--out-dir', dir, '--', 'echo out; echo err >&2']);
    expect(d.code, d.stderr).toBe(0);
    expect(readFileSync(join(dir, 'ex-bb.out'), 'utf8')).toBe('out\n');
    expect(readFileSync(join(dir, 'ex-bb.err'), 'utf8')).toBe('err\n');
    expect(statSync(join(dir, 'ex-c.out')).size).toBe(4);
  }, 40_000);

  it('one relay connection carries every session; Ctrl-C cancels them all: exit 130, the relay ends and audits each; --run shows the run together', async () => {
    const p = run(BIN.mssh, ['exec', 'grp=x', ...login, '--', 'sleep', '30'], { env: admin.env });
    p.child.stdin!.end();
    const active = async () => {
      const r = await admin.mssh(['admin', 'sessions', '--active', '--json']);
      return (JSON.parse(r.stdout) as SessionInfo[]).filter((s) => s.host.startsWith('ex-'));
    };
    await waitFor(async () => ((await active()).length === 3 ? true : null), 15_000, 'three sessions open');
    // ONE connection to the relay carries the three sessions (one HTTP/2 stream each).
    expect(tcpConnectionsTo(p.child.pid!, relay.port)).toBe(1);
    const t0 = Date.now();
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(p.err).toMatch(/3 machines: 0 ok, 3 cancelled/);
    expect(p.err).toMatch(/interrupted \(Ctrl-C\)/);
    const runId = runIdOf(p.err);
    await waitFor(async () => ((await active()).length === 0 ? true : null), 10_000, 'every session ended');
    const rows = await waitFor(
      async () => {
        const evs = await adminAuditEvents(admin, ['--run', runId]);
        return evs.filter((e) => e.type === 'session.end').length === 3 ? evs : null;
      },
      10_000,
      'three session.end rows for the run',
    );
    expect(rows.map((e) => `${e.type} ${e.host}`).sort()).toEqual([
      'session.end ex-a',
      'session.end ex-bb',
      'session.end ex-c',
      'session.start ex-a',
      'session.start ex-bb',
      'session.start ex-c',
    ]);
    expect(rows.every((e) => e.runId === runId)).toBe(true);
    // Another run's rows are not in it; a malformed id is a usage error.
    const other = await adminAuditEvents(admin, ['--type', 'session.start', '--limit', '1000']);
    expect(other.filter((e) => e.runId === runId).length).toBe(3);
    expect(other.length).toBeGreaterThan(3);
    const bad = await admin.mssh(['admin', 'audit', '--run', 'NOT-A-RUN']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/is not a run id \[CLI_ERR_USAGE\]/);
  }, 40_000);
});
