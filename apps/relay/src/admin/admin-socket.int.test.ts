/**
 * The local admin socket while the relay serves: `user add` and `agent enroll` through it, with the
 * database held by the running relay only. Also the stale-socket and second-relay guards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, statSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PATHS, LoginResponse } from '@mssh/protocol';
import { fixtures } from '@mssh/test-fixtures/inject';
import { DB_KINDS, agentIdentity, silentLogger, startTestRelay, type TestRelay } from '../test-support.js';
import { adminSocketPath, claimAdminSocketPath, socketAnswers, startAdminSocket } from './admin-socket.js';
import { AdminSocketClient } from './admin-client.js';
import { RelayError, CliError } from '../errors.js';
import { prepareDataDir } from '../data-dir.js';

describe.each(DB_KINDS)('admin socket on %s', (kind) => {
  let r: TestRelay;
  let dataDir: string;
  let sock: { close(): Promise<void> };
  let port: number;

  beforeAll(async () => {
    r = await startTestRelay(kind);
    await r.app.listen({ host: '127.0.0.1', port: 0 });
    port = (r.app.server.address() as { port: number }).port;
    dataDir = join(mkdtempSync(join(fixtures().root, 'admin-sock-')), 'data');
    prepareDataDir(dataDir);
    await claimAdminSocketPath(adminSocketPath(dataDir));
    sock = await startAdminSocket({ admin: r.services.admin, logger: silentLogger(), path: adminSocketPath(dataDir) });
  });
  afterAll(async () => {
    await sock?.close();
    await r?.close();
  });

  it('is owner-only, in an owner-only directory', () => {
    expect(statSync(adminSocketPath(dataDir)).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it('adds a user while the server runs; the user can log in over HTTPS', async () => {
    const client = new AdminSocketClient(adminSocketPath(dataDir));
    const u = await client.createUser({ name: 'dave', password: 'dave-password', admin: false });
    expect(u).toMatchObject({ name: 'dave', admin: false });
    const res = await fetchLogin(port, 'dave', 'dave-password');
    expect(LoginResponse.parse(res).user).toBe('dave');
    await expect(client.createUser({ name: 'dave', password: 'dave-password', admin: false })).rejects.toMatchObject({
      code: 'RLY_ERR_NAME_TAKEN',
    });
    await expect(
      client.createUser({ name: 'Bad Name', password: 'dave-password', admin: false }),
    ).rejects.toBeInstanceOf(RelayError);
    const rows = await r.repos.users.findByName('dave');
    expect(rows?.isAdmin).toBe(false);
  });

  it('issues an enrolment token that an agent can use', async () => {
    const client = new AdminSocketClient(adminSocketPath(dataDir));
    const t = await client.createEnrollToken('sockbox');
    expect(t).toMatchObject({
      name: 'sockbox',
      relayUrl: 'https://relay.test:8443',
      relayFingerprint: r.tls.fingerprint,
    });
    const id = agentIdentity();
    const res = await r.app.inject({
      method: 'POST',
      url: PATHS.enroll,
      payload: {
        token: t.token,
        name: 'sockbox',
        publicKey: id.publicKey,
        hostKeys: [id.hostKey],
        agentVersion: '0.1.0',
        protocolVersion: 1,
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect((await client.info()).relayFingerprint).toBe(r.tls.fingerprint);
  });

  it('the listening relay hands agent-ALPN sockets to the tunnel router', async () => {
    const tls = await import('node:tls');
    const before = r.router.acceptedSockets;
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['mssh-agent/1'], rejectUnauthorized: false });
      // The stub router answers a line and ends the socket: by then it has taken it over.
      s.on('data', () => {});
      s.on('end', () => {
        resolve(s.alpnProtocol ?? false);
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(alpn).toBe('mssh-agent/1');
    expect(r.router.acceptedSockets).toBe(before + 1);
  });

  it('refuses a second relay on the same data dir while this one answers', async () => {
    await expect(claimAdminSocketPath(adminSocketPath(dataDir))).rejects.toThrow(/already running/);
    expect(await socketAnswers(adminSocketPath(dataDir))).toBe(true);
  });
});

describe('stale admin socket', () => {
  it('is removed when nothing answers on it', async () => {
    const dir = mkdtempSync(join(fixtures().root, 'stale-sock-'));
    const path = adminSocketPath(dir);
    // A process killed with -9 leaves its socket file behind.
    const { spawnSync } = await import('node:child_process');
    spawnSync(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ],
      { timeout: 20_000 },
    );
    expect(existsSync(path)).toBe(true);
    expect(await socketAnswers(path)).toBe(false);
    await claimAdminSocketPath(path);
    expect(existsSync(path)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a path that is not a socket is refused, with the fix', async () => {
    const dir = mkdtempSync(join(fixtures().root, 'stale-sock-'));
    const { writeFileSync } = await import('node:fs');
    writeFileSync(adminSocketPath(dir), 'x');
    await expect(claimAdminSocketPath(adminSocketPath(dir))).rejects.toBeInstanceOf(CliError);
    rmSync(dir, { recursive: true, force: true });
  });
});

async function fetchLogin(port: number, user: string, password: string): Promise<unknown> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: PATHS.login,
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString()));
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ user, password }));
  });
}
