/**
 * The ssh2 server core on loopback TCP with ssh2's own client: the registry, public-key auth with the
 * per-connection failure cap, admit() refusals, the deadlines, teardown and close().
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import pino from 'pino';
import ssh2 from 'ssh2';
import type { Connection } from 'ssh2';
import { generateEd25519KeyPair } from '@mssh/protocol/ssh2-keys';
import {
  createSshServerCore,
  DISCONNECT,
  type ConnOf,
  type SshServerCore,
  type SshServerCoreOptions,
} from './index.js';

const hostKey = generateEd25519KeyPair('test-host').private;
const alice = generateEd25519KeyPair('alice');
const mallory = generateEd25519KeyPair('mallory');

interface State {
  tag: string;
  accepted: boolean;
}
type Conn = ConnOf<State>;

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** A core behind a TCP listener on 127.0.0.1; alice's key is the only one registered (for user "alice"). */
async function start(
  o: Partial<SshServerCoreOptions<State>> = {},
): Promise<{ core: SshServerCore<State>; port: number; ended: Array<{ conn: Conn; why: string }> }> {
  const ended: Array<{ conn: Conn; why: string }> = [];
  const core = createSshServerCore<State>({
    hostKeys: [hostKey],
    ident: 'mssh_test',
    logger: pino({ level: 'silent' }),
    loginGraceMs: 10_000,
    maxAuthTries: 3,
    findKey: async (conn, { user }) =>
      user === 'alice'
        ? { publicKey: alice.public, accepted: () => (conn.accepted = true) }
        : { refused: 'unknown user' },
    onClient: () => undefined,
    onEnd: (conn, why) => void ended.push({ conn, why }),
    ...o,
  });
  const net: NetServer = createServer((sock) => core.accept(sock, { tag: 't', accepted: false }));
  await new Promise<void>((r) => net.listen(0, '127.0.0.1', () => r()));
  cleanups.push(async () => {
    await core.close('test over');
    await new Promise<void>((r) => net.close(() => r()));
  });
  return { core, port: (net.address() as AddressInfo).port, ended };
}

/** ssh2's client: resolves 'ready', or the error/close that came instead. */
function sshClient(
  port: number,
  username: string,
  privateKey: string,
): Promise<{ ready: boolean; error?: Error & { code?: unknown }; client: InstanceType<typeof ssh2.Client> }> {
  const client = new ssh2.Client();
  cleanups.push(() => void client.end());
  return new Promise((resolve) => {
    let error: (Error & { code?: unknown }) | undefined;
    client.on('error', (e) => (error ??= e));
    client.once('ready', () => resolve({ ready: true, client }));
    client.once('close', () => resolve({ ready: false, error, client }));
    client.connect({ host: '127.0.0.1', port, username, privateKey, hostVerifier: () => true, tryKeyboard: false });
  });
}

/** Bounded poll: resolves once `cond` holds, fails after `ms`. */
async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ssh server core', () => {
  it('registers a connection, authenticates the registered key, and ends it once', async () => {
    let clients = 0;
    const { core, port, ended } = await start({ onClient: () => void clients++ });
    const r = await sshClient(port, 'alice', alice.private);
    expect(r.ready).toBe(true);
    expect(core.size).toBe(1);
    const [conn] = core.connections();
    expect(conn!.authenticated).toBe(true);
    expect(conn!.accepted).toBe(true);
    expect(conn!.tag).toBe('t');
    expect(conn!.client).toBeDefined();
    expect(clients).toBe(1);
    r.client.end();
    await until(() => core.size === 0);
    expect(ended).toHaveLength(1);
    expect(ended[0]!.conn).toBe(conn);
  });

  it('refuses an unregistered key, records what was tried, and cuts the connection after maxAuthTries', async () => {
    const { core, port, ended } = await start({ maxAuthTries: 1 });
    const wrongKey = await sshClient(port, 'alice', mallory.private);
    expect(wrongKey.ready).toBe(false);
    const unknown = await sshClient(port, 'bob', alice.private);
    expect(unknown.ready).toBe(false);
    await until(() => ended.length === 2);
    expect(core.size).toBe(0);
    const [bad, bob] = ended.map((e) => e.conn);
    expect(bad!.authenticated).toBe(false);
    expect(bad!.triedAuth).toBe(true);
    expect(bad!.authFailures).toBe(1);
    expect(bad!.tried).toMatchObject({ user: 'alice', reason: 'bad signature' });
    expect(bad!.tried!.keys).toHaveLength(1);
    expect(bob!.tried).toMatchObject({ user: 'bob', reason: 'unknown user' });
  });

  it('the server cuts a client that keeps trying after maxAuthTries refusals', async () => {
    const { port, ended } = await start({ maxAuthTries: 2 });
    const client = new ssh2.Client();
    cleanups.push(() => void client.end());
    let offered = 0;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', () => undefined);
    client.connect({
      host: '127.0.0.1',
      port,
      username: 'alice',
      hostVerifier: () => true,
      // Offers the wrong key again and again (up to 6 times), as a guesser would.
      authHandler: (_methods, _partial, next) =>
        offered++ < 6 ? next({ type: 'publickey', username: 'alice', key: mallory.private }) : next(false as never),
    });
    await closed;
    await until(() => ended.length === 1);
    expect(ended[0]!.conn.authFailures).toBe(2);
    expect(offered).toBeLessThanOrEqual(3);
  });

  it('admit() refuses with a disconnect whose reason and description the client gets', async () => {
    const { port, ended } = await start({
      admit: (_conn, user) =>
        user === 'alice'
          ? { reason: DISCONNECT.NO_MORE_AUTH_METHODS_AVAILABLE, description: 'TEST_ERR_BARRED: not now' }
          : null,
    });
    const r = await sshClient(port, 'alice', alice.private);
    expect(r.ready).toBe(false);
    expect(r.error?.message).toBe('TEST_ERR_BARRED: not now');
    expect(r.error?.code).toBe(DISCONNECT.NO_MORE_AUTH_METHODS_AVAILABLE);
    await until(() => ended.length === 1);
    expect(ended[0]!.conn.tried).toMatchObject({ user: 'alice', reason: 'TEST_ERR_BARRED: not now' });
    expect(ended[0]!.conn.accepted).toBe(false);
  });

  it('onAuthError turns a failing lookup into a disconnect with its text', async () => {
    const { port } = await start({
      findKey: async () => {
        throw new Error('db down');
      },
      onAuthError: () => ({ reason: DISCONNECT.SERVICE_NOT_AVAILABLE, description: 'TEST_ERR_DOWN: try later' }),
    });
    const r = await sshClient(port, 'alice', alice.private);
    expect(r.ready).toBe(false);
    expect(r.error?.message).toBe('TEST_ERR_DOWN: try later');
  });

  for (const handshake of [false, true]) {
    it(`cuts a connection that never speaks SSH: ${handshake ? 'the handshake deadline' : 'the login deadline covers the handshake'}`, async () => {
      const deadlines: string[] = [];
      const { core, port, ended } = await start({
        loginGraceMs: handshake ? 10_000 : 300,
        ...(handshake ? { handshakeTimeoutMs: 300 } : {}),
        onDeadline: (_c, which) => void deadlines.push(which),
      });
      const t0 = Date.now();
      const closed = await new Promise<number>((resolve) => {
        const s: Socket = connect(port, '127.0.0.1');
        s.on('data', () => undefined); // the server's version line
        s.on('error', () => undefined);
        s.on('close', () => resolve(Date.now() - t0));
        cleanups.push(() => void s.destroy());
      });
      expect(closed).toBeGreaterThanOrEqual(250);
      expect(closed).toBeLessThan(5_000); // destroyed, not left for the teardown delay
      expect(deadlines).toEqual([handshake ? 'handshake' : 'login']);
      expect(ended.map((e) => e.why)).toEqual([`${handshake ? 'handshake' : 'login'} timeout`]);
      expect(core.size).toBe(0);
    });
  }

  it('the login deadline runs after the handshake and stops at authentication', async () => {
    const deadlines: string[] = [];
    const { core, port } = await start({
      handshakeTimeoutMs: 5_000,
      loginGraceMs: 300,
      onDeadline: (_c, w) => void deadlines.push(w),
    });
    // Authenticated: outlives the login deadline.
    const r = await sshClient(port, 'alice', alice.private);
    expect(r.ready).toBe(true);
    // Handshake done, never authenticates: cut by the login deadline.
    const stuck = new ssh2.Client();
    cleanups.push(() => void stuck.end());
    const stuckClosed = new Promise<void>((resolve) => stuck.once('close', () => resolve()));
    stuck.on('error', () => undefined);
    stuck.connect({
      host: '127.0.0.1',
      port,
      username: 'alice',
      hostVerifier: () => true,
      authHandler: (_m, _p, _cb) => undefined,
    });
    await stuckClosed;
    expect(deadlines).toEqual(['login']);
    expect(core.size).toBe(1);
    expect(core.connections()[0]!.authenticated).toBe(true);
  });

  it('a re-key after authentication does not start the login deadline again', async () => {
    const deadlines: string[] = [];
    const { core, port } = await start({
      handshakeTimeoutMs: 5_000,
      loginGraceMs: 200,
      onDeadline: (_c, w) => void deadlines.push(w),
    });
    const r = await sshClient(port, 'alice', alice.private);
    expect(r.ready).toBe(true);
    const server = core.connections()[0]!.client! as Connection & { rekey(cb: (err?: Error) => void): void };
    await new Promise<void>((resolve, reject) => server.rekey((err?: Error) => (err ? reject(err) : resolve())));
    // Nothing happens, so there is no event to wait for: watch 3 login graces long (bounded) that the
    // connection is not cut (ssh2 emits 'handshake' again on every re-key).
    const cut = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 600);
      r.client.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    expect(cut).toBe(false);
    expect(deadlines).toEqual([]);
    expect(core.size).toBe(1);
  });

  it('close(): ends every connection, waits for drain, refuses new ones', async () => {
    const { core, port, ended } = await start();
    const a = await sshClient(port, 'alice', alice.private);
    const b = await sshClient(port, 'alice', alice.private);
    expect(a.ready && b.ready).toBe(true);
    const drained: number[] = [];
    await core.close('shutting down', async (conn) => {
      await new Promise((r) => setTimeout(r, 20));
      drained.push(conn.id);
    });
    expect(drained).toHaveLength(2);
    expect(ended.map((e) => e.why)).toEqual(['shutting down', 'shutting down']);
    expect(core.size).toBe(0);
    const late = await sshClient(port, 'alice', alice.private);
    expect(late.ready).toBe(false);
    expect(core.size).toBe(0);
  });
});
