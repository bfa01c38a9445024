/**
 * Issue 21.3: OpenSSH habits in `mssh ssh`, through the real CLI, relay, agents and OpenSSH sshd: -L, -R
 * and -D (SOCKS5 and SOCKS4a) carrying bytes both ways, -N, -A, -p and -o ServerAliveInterval, and the
 * failures: a local port already taken (CLI_ERR_FORWARD_BIND) and an sshd with AllowTcpForwarding no
 * (CLI_ERR_FORWARD_REFUSED for -R; a refused -L connection is reported and the session goes on).
 *
 * The machines' sshd runs on this computer, so "the machine's localhost" is 127.0.0.1 here too: the -R
 * listener is reached from the test directly, and once through a remote command (bash's /dev/tcp).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { freePort, waitFor, waitForPort } from './fixtures/net.js';
import { startSshd } from './fixtures/sshd.js';
import {
  BIN,
  exec,
  loginUser,
  run,
  startAgent,
  startRelay,
  stopAll,
  type Proc,
  type Relay,
  type User,
} from './fixtures/stack.js';

afterAll(stopAll);

/** Echo server on loopback: answers every byte it gets. */
async function startEcho(): Promise<{ port: number; server: Server }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

/** Read exactly n bytes (bounded by timeoutMs). */
function readN(sock: Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const t = setTimeout(() => done(new Error(`only ${got.length} of ${n} bytes within ${timeoutMs} ms`)), timeoutMs);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= n) done(null);
    };
    const onEnd = () => done(new Error(`connection ended after ${got.length} of ${n} bytes`));
    const done = (err: Error | null) => {
      clearTimeout(t);
      sock.removeListener('data', onData);
      sock.removeListener('end', onEnd);
      sock.removeListener('close', onEnd);
      if (err) reject(err);
      else {
        const head = got.subarray(0, n);
        const rest = got.subarray(n);
        if (rest.length) sock.unshift(rest);
        resolve(head);
      }
    };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Send bytes and expect the same bytes back. */
async function echoes(sock: Socket, size = 64 * 1024): Promise<void> {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
  sock.write(data);
  expect((await readN(sock, size)).equals(data)).toBe(true);
}

/** A SOCKS5 CONNECT to 127.0.0.1:port (or a name), no authentication: the reply code. */
async function socks5(
  proxyPort: number,
  target: { host: string; port: number },
  cmd = 1,
): Promise<{ code: number; sock: Socket }> {
  const sock = await open(proxyPort);
  sock.write(Buffer.from([5, 1, 0]));
  expect([...(await readN(sock, 2))]).toEqual([5, 0]);
  const name = Buffer.from(target.host);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(target.port);
  sock.write(Buffer.concat([Buffer.from([5, cmd, 0, 3, name.length]), name, port]));
  const reply = await readN(sock, 10);
  expect(reply[0]).toBe(5);
  return { code: reply[1]!, sock };
}

describe('mssh ssh: -L, -R, -D, -N, -A, -p, -o ServerAlive*', () => {
  let relay: Relay;
  let user: User;
  let echo: { port: number; server: Server };
  let noFwd: Awaited<ReturnType<typeof startSshd>>;
  const key = () => fixtures().sshd.clientKey;
  const login = () => fixtures().sshd.user;
  const procs: Proc[] = [];
  let sshAgent: ChildProcess | null = null;

  beforeAll(async () => {
    relay = await startRelay('pglite');
    noFwd = await startSshd({ extraConfig: ['AllowTcpForwarding no', 'AllowAgentForwarding no'] });
    await Promise.all([startAgent(relay, 'fw'), startAgent(relay, 'nofw', { target: `127.0.0.1:${noFwd.port}` })]);
    user = await loginUser(relay);
    echo = await startEcho();
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    sshAgent?.kill();
    echo?.server.close();
    await noFwd?.stop();
  });

  /** `mssh ssh` left running (-N), with the user's env. */
  const background = (args: string[], env: NodeJS.ProcessEnv = user.env): Proc => {
    const p = run(BIN.mssh, ['ssh', ...args], { env });
    procs.push(p);
    return p;
  };

  it('-N -L and -D: bytes both ways through a local forward and SOCKS5/SOCKS4a; failures per connection; Ctrl-C exits 255; -p warns', async () => {
    const [lport, dport, closedPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const p = background([
      '-N',
      '-v',
      '-p',
      '2222',
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=2',
      '-L',
      `${lport}:127.0.0.1:${echo.port}`,
      '-L',
      `${closedPort}:127.0.0.1:1`,
      '-D',
      `${dport}`,
      '-i',
      key(),
      `${login()}@fw`,
    ]);
    await p.waitOutput(/authenticating as/, 20_000, 'err');
    expect(p.err).toMatch(
      /^mssh: -p 2222 ignored: mssh reaches the SSH server that the machine's agent is set up for/m,
    );
    expect(p.err).toMatch(
      new RegExp(`-L ${lport}:127\\.0\\.0\\.1:${echo.port}: listening on 127\\.0\\.0\\.1:${lport}`),
    );

    // -L: 64 KiB there and back, twice at once
    const [a, b] = await Promise.all([open(lport), open(lport)]);
    await Promise.all([echoes(a), echoes(b)]);
    a.destroy();
    b.destroy();

    // -L to a port nothing listens on (on the machine): that connection is closed and reported, the rest goes on
    const dead = await open(closedPort);
    await new Promise<void>((r) => dead.once('close', () => r()));
    await p.waitOutput(
      new RegExp(`-L ${closedPort}:127\\.0\\.0\\.1:1: connection to 127\\.0\\.0\\.1:1 failed: connect failed`),
      10_000,
      'err',
    );
    const again = await open(lport);
    await echoes(again, 1000);
    again.destroy();

    // -D SOCKS5 CONNECT, by name
    const s5 = await socks5(dport, { host: 'localhost', port: echo.port });
    expect(s5.code).toBe(0);
    await echoes(s5.sock);
    s5.sock.destroy();
    // SOCKS5 to a closed port: "connection refused" (5); UDP ASSOCIATE: "command not supported" (7)
    const refused = await socks5(dport, { host: '127.0.0.1', port: 1 });
    expect(refused.code).toBe(5);
    refused.sock.destroy();
    const udp = await socks5(dport, { host: '127.0.0.1', port: echo.port }, 3);
    expect(udp.code).toBe(7);
    udp.sock.destroy();
    // SOCKS4a, by name
    const s4 = await open(dport);
    const port = Buffer.alloc(2);
    port.writeUInt16BE(echo.port);
    s4.write(Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([0, 0, 0, 1]), Buffer.from('me\0localhost\0')]));
    expect([...(await readN(s4, 8))].slice(0, 2)).toEqual([0, 0x5a]);
    await echoes(s4, 5000);
    s4.destroy();

    // -N: no session channel, nothing printed on stdout, still up
    expect(p.running).toBe(true);
    expect(p.out).toBe('');
    expect(p.err).not.toMatch(/session started/);
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(255);
    expect(p.err).toMatch(/Killed by signal 2/);
    // the listeners are gone with it
    await expect(open(lport)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('-R: the machine reaches a server here, from a remote command and directly; -R 0 prints the allocated port', async () => {
    const rport = await freePort();
    const r = await user.mssh([
      'ssh',
      '-R',
      `${rport}:127.0.0.1:${echo.port}`,
      '-i',
      key(),
      `${login()}@fw`,
      '--',
      `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${rport}; printf ping-through-R >&3; head -c 14 <&3'`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ping-through-R');

    const p = background([
      '-N',
      '-R',
      `0:127.0.0.1:${echo.port}`,
      '-R',
      `${rport}:127.0.0.1:1`,
      '-i',
      key(),
      `${login()}@fw`,
    ]);
    const allocated = Number(
      (await p.waitOutput(/^Allocated port (\d+) for remote forward to 127\.0\.0\.1:\d+$/m, 20_000, 'err'))[1],
    );
    const s = await open(allocated);
    await echoes(s);
    s.destroy();
    // -R to a local port nothing listens on: the remote client is cut, the error is printed here
    const dead = await open(rport);
    await new Promise<void>((res) => dead.once('close', () => res()));
    await p.waitOutput(new RegExp(`-R ${rport}:127\\.0\\.0\\.1:1: connect_to 127\\.0\\.0\\.1:1 failed`), 10_000, 'err');
    expect(p.running).toBe(true);
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(255);
  });

  it('a local port already in use: CLI_ERR_FORWARD_BIND at once, before any session', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      for (const flag of [
        ['-L', `${port}:127.0.0.1:${echo.port}`],
        ['-D', `${port}`],
      ]) {
        const r = await user.mssh(['ssh', ...flag, '-i', key(), `${login()}@fw`, '--', 'echo', 'should-not-run']);
        expect(r.code).toBe(255);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(
          new RegExp(
            `^mssh: cannot listen on 127\\.0\\.0\\.1:${port} for ${flag[0]} ${flag[1]!.replace(/\./g, '\\.')}: address in use \\[CLI_ERR_FORWARD_BIND\\]\\n.*choose another local port`,
          ),
        );
      }
    } finally {
      taken.close();
    }
  });

  it('an sshd with AllowTcpForwarding no: -R is CLI_ERR_FORWARD_REFUSED before the command runs; a -L connection is refused, the session goes on', async () => {
    const rport = await freePort();
    const r = await user.mssh([
      'ssh',
      '-R',
      `${rport}:127.0.0.1:${echo.port}`,
      '-i',
      noFwd.clientKey,
      `${noFwd.user}@nofw`,
      '--',
      'echo',
      'should-not-run',
    ]);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      new RegExp(
        `^mssh: the SSH server on nofw refused -R ${rport}:127\\.0\\.0\\.1:${echo.port} \\(listening on localhost:${rport} there\\) \\[CLI_ERR_FORWARD_REFUSED\\]\\n.*AllowTcpForwarding`,
      ),
    );

    const lport = await freePort();
    const p = background([
      '-L',
      `${lport}:127.0.0.1:${echo.port}`,
      '-i',
      noFwd.clientKey,
      `${noFwd.user}@nofw`,
      '--',
      'sleep',
      '20',
    ]);
    await waitForPort(lport, 10_000);
    const c = await open(lport);
    await new Promise<void>((res) => c.once('close', () => res()));
    await p.waitOutput(/connection to 127\.0\.0\.1:\d+ failed: administratively prohibited/, 15_000, 'err');
    expect(p.running).toBe(true);
    await p.stop('SIGKILL');
  });

  it('-A forwards the ssh-agent: the remote `ssh-add -l` lists its key; refused by the sshd or without SSH_AUTH_SOCK, a warning and the command still runs', async () => {
    const sock = join(fixtures().root, `fwd-agent-${process.pid}.sock`);
    sshAgent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    await waitFor(() => existsSync(sock), 5_000, 'ssh-agent socket');
    const env = { ...user.env, SSH_AUTH_SOCK: sock };
    execFileSync('/usr/bin/ssh-add', [key()], { env, stdio: 'ignore', timeout: 10_000 });
    const fp = execFileSync('/usr/bin/ssh-keygen', ['-lf', key()], { encoding: 'utf8' }).split(' ')[1]!;
    // no -i: the agent's key logs in
    const r = await exec(BIN.mssh, ['ssh', '-A', `${login()}@fw`, '--', 'ssh-add', '-l'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(fp);
    // without -A the remote side has no agent (ssh-add -l: exit 2, "Could not open a connection")
    const none = await exec(BIN.mssh, ['ssh', `${login()}@fw`, '--', 'ssh-add', '-l'], { env });
    expect(none.code).toBe(2);

    // an sshd that refuses agent forwarding: a warning, and the command runs without it (OpenSSH goes on too)
    const refused = await exec(
      BIN.mssh,
      ['ssh', '-A', '-i', noFwd.clientKey, `${noFwd.user}@nofw`, '--', 'echo', 'ran-anyway'],
      { env },
    );
    expect(refused.code, refused.stderr).toBe(0);
    expect(refused.stdout).toBe('ran-anyway\n');
    expect(refused.stderr).toMatch(
      /^mssh: nofw's SSH server refused agent forwarding \(AllowAgentForwarding\); going on without it$/m,
    );

    const warn = await user.mssh(['ssh', '-A', '-i', key(), `${login()}@fw`, '--', 'echo', 'ran']);
    expect(warn.code, warn.stderr).toBe(0);
    expect(warn.stdout).toBe('ran\n');
    expect(warn.stderr).toMatch(/^mssh: -A ignored: SSH_AUTH_SOCK is not set, so there is no ssh-agent to forward/m);
  });

  it('-N with a command, and a bad -L, are usage errors with the fix', async () => {
    const n = await user.mssh(['ssh', '-N', `${login()}@fw`, '--', 'true']);
    expect(n.code).toBe(255);
    expect(n.stderr).toMatch(/-N runs no remote command, but one was given \[CLI_ERR_USAGE\]/);
    const bad = await user.mssh(['ssh', '-L', '8080:localhost', `${login()}@fw`]);
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(
      /bad forwarding specification "-L 8080:localhost": 2 fields, needs 3 or 4 \[CLI_ERR_USAGE\]\nUse -L \[bind_address:\]port:host:hostport/,
    );
    const sock = await user.mssh(['ssh', '-L', '8080:/run/app.sock', `${login()}@fw`]);
    expect(sock.stderr).toMatch(/Unix-domain socket forwarding is not supported by mssh ssh \[CLI_ERR_USAGE\]/);
  });
});
