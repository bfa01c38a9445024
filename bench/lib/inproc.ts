/**
 * In-process SSH clients (ssh2) for the metrics that need hundreds of sessions or a tight loop, where a
 * process per session would measure fork/exec rather than the path: the same ssh2 client runs over a
 * relay tunnel (mssh) or over a direct-tcpip channel through the bastion (OpenSSH jump baseline).
 */
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { BenchEnv } from './env.js';

const { Client } = ssh2;
export type SshClient = InstanceType<typeof Client>;

const keyCache = new Map<string, Buffer>();
function key(path: string): Buffer {
  let k = keyCache.get(path);
  if (!k) keyCache.set(path, (k = readFileSync(path)));
  return k;
}

/** A verifier accepting exactly the given host keys ("type base64" lines). */
function hostVerifier(hostKeys: string[]): (k: Buffer) => boolean {
  const allowed = new Set(hostKeys.map((l) => l.split(/\s+/)[1]!));
  return (k: Buffer) => allowed.has(k.toString('base64'));
}

function connect(
  env: BenchEnv,
  hostKeys: string[],
  how: { sock: Duplex } | { port: number },
  timeoutMs: number,
): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    const t = setTimeout(() => {
      c.destroy();
      reject(new Error(`ssh handshake timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    c.once('ready', () => {
      clearTimeout(t);
      resolve(c);
    });
    c.once('error', (e) => {
      clearTimeout(t);
      c.destroy();
      reject(e);
    });
    c.on('error', () => {});
    c.connect({
      ...('sock' in how ? { sock: how.sock } : { host: '127.0.0.1', port: how.port }),
      username: env.user,
      privateKey: key(env.key.path),
      hostVerifier: hostVerifier(hostKeys),
      readyTimeout: timeoutMs,
    });
  });
}

/** SSH to the target over an already open byte stream (a relay tunnel or a jump channel). */
export function sshOver(env: BenchEnv, sock: Duplex, timeoutMs = 60_000): Promise<SshClient> {
  return connect(env, env.target.hostKeys, { sock }, timeoutMs);
}

/** An SSH connection to the bastion (the `-J` hop). */
export function bastionClient(env: BenchEnv, timeoutMs = 60_000): Promise<SshClient> {
  return connect(env, env.bastion.hostKeys, { port: env.bastion.port }, timeoutMs);
}

/** Open a direct-tcpip channel through the bastion to 127.0.0.1:port (what `ssh -W` does for -J). */
export function jumpChannel(bastion: SshClient, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    bastion.forwardOut('127.0.0.1', 0, '127.0.0.1', port, (err, ch) => (err ? reject(err) : resolve(ch)));
  });
}

export function execChannel(c: SshClient, command: string): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => c.exec(command, (err, ch) => (err ? reject(err) : resolve(ch))));
}

/** Resolve with the first bytes the stream yields (an SSH server's identification line). */
export function firstBytes(sock: Duplex, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`no data within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      cleanup();
      resolve(d);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('stream ended before any data'));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      clearTimeout(t);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('error', onError);
    };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('error', onError);
  });
}

/** Close a stream politely, destroy it if it has not closed within timeoutMs. */
export function closeStream(sock: Duplex, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (sock.destroyed) return resolve();
    const t = setTimeout(() => {
      sock.destroy();
      resolve();
    }, timeoutMs);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    sock.on('error', () => {});
    sock.resume();
    sock.end();
  });
}
