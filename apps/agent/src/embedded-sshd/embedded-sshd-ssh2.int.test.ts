/**
 * The embedded SSH server driven by ssh2's Client (the embedded client of `mssh ssh`), over loopback TCP
 * and over an HTTP/2 stream (the production transport), plus the built-in SFTP server and opt-in forwarding.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import {
  connect as http2Connect,
  createServer as createHttp2Server,
  type ClientHttp2Stream,
  type ServerHttp2Stream,
} from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type Server } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '@mssh/test-fixtures/net';
import { EmbeddedTarget } from './embedded-target.js';
import { pgrep, run, sha256, startTestSshd, type TestSshd } from './test-support.js';

const { Client, BaseAgent } = ssh2;

/** Bulk transfers run ssh2's crypto in JS land: give them room on a loaded 2-core machine. */
const BULK = { timeout: 180_000 };

let t: TestSshd;

beforeAll(async () => {
  t = await startTestSshd();
});

afterAll(async () => {
  await t?.stop();
});

function connectClient(s: TestSshd, extra: Partial<ConnectConfig> = {}): Promise<InstanceType<typeof Client>> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({
      host: '127.0.0.1',
      port: s.port,
      username: 'ignored-user',
      privateKey: readFileSync(s.key),
      hostVerifier: (key: Buffer) => s.sshd.hostPublicKeys().includes(`ssh-ed25519 ${key.toString('base64')}`),
      readyTimeout: 15_000,
      ...extra,
    });
  });
}

function exec(c: InstanceType<typeof Client>, cmd: string, opts: ssh2.ExecOptions = {}): Promise<ClientChannel> {
  return new Promise((resolve, reject) => c.exec(cmd, opts, (e, ch) => (e ? reject(e) : resolve(ch))));
}

interface Outcome {
  stdout: string;
  stderr: string;
  code: number | null | undefined;
  signal: string | undefined;
}

function collect(ch: ClientChannel): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { stdout: '', stderr: '', code: undefined, signal: undefined };
    ch.on('data', (d: Buffer) => (o.stdout += d.toString()));
    ch.stderr.on('data', (d: Buffer) => (o.stderr += d.toString()));
    ch.on('exit', (code: number | null, signal?: string) => {
      o.code = code;
      o.signal = signal;
    });
    ch.on('close', () => resolve(o));
  });
}

/** An agent with no keys, so ssh2 lets us request agent forwarding. */
class EmptyAgent extends BaseAgent {
  getIdentities(cb: (err: Error | undefined, keys?: Buffer[]) => void): void {
    cb(undefined, []);
  }
  sign(
    _pubKey: unknown,
    _data: Buffer,
    _opts: unknown,
    cb?: (err: Error | undefined, signature?: Buffer) => void,
  ): void {
    cb?.(new Error('no keys'));
  }
}

describe('embedded sshd with the ssh2 client', () => {
  it('exec: stdout and stderr separate, exit status, exit signal, and a signal request', async () => {
    const c = await connectClient(t);
    try {
      const a = await collect(await exec(c, 'echo out; echo err >&2; exit 7'));
      expect(a).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 7 });

      const b = await collect(await exec(c, 'kill -TERM $$'));
      expect(b.signal).toMatch(/^(SIG)?TERM$/);

      const marker = `1000.${Date.now() % 100000}7`;
      const ch = await exec(c, `sleep ${marker}`);
      const done = collect(ch);
      await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 10_000, 'sleep to start');
      ch.signal('INT');
      expect((await done).signal).toMatch(/^(SIG)?INT$/);
    } finally {
      c.end();
    }
  });

  it('pty shell: stty size follows setWindow, UTF-8 round trips, TERM from the pty request, exit 3', async () => {
    const c = await connectClient(t);
    try {
      const ch = await new Promise<ClientChannel>((resolve, reject) =>
        c.shell({ term: 'vt220', cols: 80, rows: 24 }, { env: { LANG: 'C.UTF-8' } }, (e, s) =>
          e ? reject(e) : resolve(s),
        ),
      );
      let out = '';
      ch.on('data', (d: Buffer) => (out += d.toString('utf8')));
      const done = collect(ch);
      ch.write('echo "A:$(stty size):$TERM:$((1+1))"\n');
      await waitFor(() => out.includes('A:24 80:vt220:2'), 10_000, `stty 24 80 in ${JSON.stringify(out.slice(-200))}`);
      ch.setWindow(33, 120, 0, 0);
      ch.write('echo "B:$(stty size):$((1+2))"\n');
      await waitFor(() => out.includes('B:33 120:3'), 10_000, `stty 33 120 in ${JSON.stringify(out.slice(-200))}`);
      ch.write('printf "%s\\n" "C:ünïcødé ✓ 中文:$((1+3))"\n');
      await waitFor(() => out.includes('C:ünïcødé ✓ 中文:4'), 10_000, `UTF-8 in ${JSON.stringify(out.slice(-200))}`);
      ch.write('exit 3\n');
      expect((await done).code).toBe(3);
    } finally {
      c.end();
    }
  });

  it('refuses direct-tcpip, tcpip-forward, agent forwarding and X11 by default', async () => {
    const c = await connectClient(t, { agent: new EmptyAgent(), agentForward: true });
    try {
      await expect(
        new Promise((resolve, reject) =>
          c.forwardOut('127.0.0.1', 0, '127.0.0.1', t.port, (e, ch) => (e ? reject(e) : resolve(ch))),
        ),
      ).rejects.toThrow(/prohibited|failure/i);
      await expect(
        new Promise((resolve, reject) => c.forwardIn('127.0.0.1', 0, (e, p) => (e ? reject(e) : resolve(p)))),
      ).rejects.toThrow();
      await expect(exec(c, 'true', { agentForward: true } as ssh2.ExecOptions)).rejects.toThrow(/agent forwarding/i);
    } finally {
      c.end();
    }
    const d = await connectClient(t);
    try {
      await expect(exec(d, 'true', { x11: true })).rejects.toThrow(/X11/i);
      // the connection is still usable afterwards
      expect((await collect(await exec(d, 'echo still-here'))).stdout).toBe('still-here\n');
    } finally {
      d.end();
    }
  });

  it('refuses password authentication and survives garbage on the wire', async () => {
    await expect(connectClient(t, { privateKey: undefined, password: 'secret' })).rejects.toThrow(
      /authentication methods failed/i,
    );
    for (const junk of [
      randomBytes(4096),
      Buffer.from('SSH-2.0-x\r\n' + 'A'.repeat(70_000)),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ]) {
      await new Promise<void>((resolve) => {
        const s = netConnect(t.port, '127.0.0.1', () => s.end(junk));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 3000).unref();
      });
    }
    const c = await connectClient(t);
    expect((await collect(await exec(c, 'echo alive'))).stdout).toBe('alive\n');
    c.end();
  });

  it('serves SSH over an HTTP/2 stream and kills the session when the stream is reset', async () => {
    const h2 = createHttp2Server();
    const streams = new Set<ServerHttp2Stream>();
    h2.on('stream', (stream) => {
      streams.add(stream);
      stream.respond({ ':status': 200 });
      t.sshd.handleConnection(stream, { sessionId: 'h2-test', user: 'alice' });
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', () => r()));
    const session = http2Connect(`http://127.0.0.1:${(h2.address() as { port: number }).port}`);
    const req: ClientHttp2Stream = session.request({ ':method': 'POST', ':path': '/ssh' }, { endStream: false });
    const c = new Client();
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', reject);
        c.connect({ sock: req, username: 'x', privateKey: readFileSync(t.key), readyTimeout: 15_000 });
      });
      expect((await collect(await exec(c, 'echo "$MSSH_SESSION_ID"'))).stdout).toBe('h2-test\n');
      const marker = `1000.${Date.now() % 100000}8`;
      await exec(c, `sleep ${marker}; true`);
      await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 10_000, 'sleep to start');
      for (const s of streams) s.close(0x8); // RST_STREAM CANCEL: the tunnel stream is gone
      const deadline = Date.now() + 2000;
      await waitFor(
        () => pgrep(`^sleep ${marker}`).length === 0 || Date.now() > deadline,
        2500,
        'the session to be killed',
      );
      expect(pgrep(`^sleep ${marker}`)).toEqual([]);
    } finally {
      c.end();
      session.destroy();
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });
});

describe('EmbeddedTarget / openSession(): the client end as an in-memory Duplex', () => {
  it('moves 8 MiB both ways byte-exact, and destroying the Duplex kills the session', BULK, async () => {
    const target = new EmbeddedTarget(t.sshd);
    expect(await target.hostKeys()).toEqual(t.sshd.hostPublicKeys());
    const sock = await target.open({ sessionId: 'pair-test', user: 'bob' });
    const c = new Client();
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', reject);
        c.connect({ sock, username: 'x', privateKey: readFileSync(t.key), readyTimeout: 15_000 });
      });
      const input = randomBytes(8 * 1024 * 1024);
      const ch = await exec(c, 'cat');
      const chunks: Buffer[] = [];
      ch.on('data', (d: Buffer) => chunks.push(d));
      const done = collect(ch);
      ch.end(input);
      expect((await done).code).toBe(0);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(input));

      const marker = `1000.${Date.now() % 100000}6`;
      c.on('error', () => undefined);
      await exec(c, `sleep ${marker}; true`);
      await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 10_000, 'sleep to start');
      sock.destroy();
      const deadline = Date.now() + 2000;
      await waitFor(
        () => pgrep(`^sleep ${marker}`).length === 0 || Date.now() > deadline,
        2500,
        'the session to be killed',
      );
      expect(pgrep(`^sleep ${marker}`)).toEqual([]);
    } finally {
      c.end();
    }
  });
});

describe('embedded sshd options: built-in SFTP, allowForwarding, close()', () => {
  let u: TestSshd;
  let echo: Server;
  beforeAll(async () => {
    u = await startTestSshd({ sftpServerPath: null, allowForwarding: true });
    echo = createNetServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    await u?.stop();
    await new Promise<void>((r) => echo.close(() => r()));
  });

  it(
    'built-in SFTP: sftp put/get of 10 MiB byte-exact, mkdir/rename/ls/rm, scp (SFTP protocol) and scp -O',
    BULK,
    async () => {
      const src = join(u.dir, 'src.bin');
      const data = randomBytes(10 * 1024 * 1024);
      writeFileSync(src, data);
      const rdir = join(u.dir, 'rdir');
      const batch = join(u.dir, 'batch');
      writeFileSync(
        batch,
        [
          `mkdir ${rdir}`,
          `put ${src} ${rdir}/a.bin`,
          `rename ${rdir}/a.bin ${rdir}/b.bin`,
          `ls -l ${rdir}`,
          `get ${rdir}/b.bin ${u.dir}/back.bin`,
          `chmod 600 ${rdir}/b.bin`,
          '',
        ].join('\n'),
      );
      const sftpArgs = [...u.sshOpts(), '-P', String(u.port)];
      const r = await run('sftp', [...sftpArgs, '-b', batch, 'x@127.0.0.1'], { timeoutMs: BULK.timeout - 10_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toMatch(/b\.bin/);
      expect(sha256(readFileSync(join(rdir, 'b.bin')))).toBe(sha256(data));
      expect(sha256(readFileSync(join(u.dir, 'back.bin')))).toBe(sha256(data));

      const small = data.subarray(0, 1024 * 1024);
      writeFileSync(join(u.dir, 'small.bin'), small);
      for (const legacy of [false, true]) {
        const dest = join(rdir, legacy ? 'scp-legacy.bin' : 'scp-sftp.bin');
        const s = await run(
          'scp',
          [...(legacy ? ['-O'] : []), ...sftpArgs, join(u.dir, 'small.bin'), `x@127.0.0.1:${dest}`],
          { timeoutMs: 30_000 },
        );
        expect(s.stderr).toBe('');
        expect(s.code).toBe(0);
        expect(sha256(readFileSync(dest))).toBe(sha256(small));
      }

      writeFileSync(batch, `rm ${rdir}/*\nrmdir ${rdir}\n`);
      expect((await run('sftp', [...sftpArgs, '-b', batch, 'x@127.0.0.1'])).code).toBe(0);
      expect(existsSync(rdir)).toBe(false);
    },
  );

  it('allowForwarding: direct-tcpip reaches a local port, remote forwarding stays refused', async () => {
    const c = await connectClient(u);
    try {
      const ch = await new Promise<ClientChannel>((resolve, reject) =>
        c.forwardOut('127.0.0.1', 0, '127.0.0.1', (echo.address() as { port: number }).port, (e, s) =>
          e ? reject(e) : resolve(s),
        ),
      );
      let got = '';
      ch.on('data', (d: Buffer) => (got += d.toString()));
      ch.write('ping through the tunnel');
      await waitFor(() => got === 'ping through the tunnel', 10_000, 'the echo');
      ch.end();
      await expect(
        new Promise((resolve, reject) => c.forwardIn('127.0.0.1', 0, (e, p) => (e ? reject(e) : resolve(p)))),
      ).rejects.toThrow();
    } finally {
      c.end();
    }
  });

  it('close() ends connections and kills running sessions', async () => {
    const v = await startTestSshd();
    const c = await connectClient(v);
    const marker = `1000.${Date.now() % 100000}9`;
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.on('error', () => undefined);
    await exec(c, `trap '' HUP; sleep ${marker}; true`);
    await waitFor(() => pgrep(`^sleep ${marker}`).length > 0, 10_000, 'sleep to start');
    await v.stop();
    expect(pgrep(`^sleep ${marker}`)).toEqual([]);
    await closed;
  });
});
