/**
 * Scan an SSH server's host public keys: one ssh2 connection per host key algorithm, each stopped at
 * host key verification (nothing is authenticated, nothing is sent beyond the key exchange).
 */
import ssh2 from 'ssh2';
import { keyLineFromBlob } from '@mssh/protocol';
import { AgentError, errnoOf } from '../errors.js';
import { formatHostPort, type HostPort } from '../dial/endpoint.js';

const { Client } = ssh2;

export const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
] as const;
export const DEFAULT_SCAN_TIMEOUT_MS = 5_000;

type ScanResult = { key: Buffer } | { error: Error };

function scanOne(target: HostPort, algorithm: string, timeoutMs: number): Promise<ScanResult> {
  return new Promise((resolve) => {
    const client = new Client();
    let done = false;
    const finish = (r: ScanResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        client.end();
      } catch {
        /* not connected */
      }
      resolve(r);
    };
    const timer = setTimeout(
      () =>
        finish({
          error: Object.assign(new Error(`no SSH key exchange within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        }),
      timeoutMs,
    );
    timer.unref();
    // Keep listening for errors after we are done: ssh2 reports the refused verification as one.
    client.on('error', (err: Error) => finish({ error: err }));
    client.on('close', () => finish({ error: new Error('connection closed before the host key was shown') }));
    client.on('ready', () => finish({ error: new Error('server accepted without showing a host key') }));
    try {
      client.connect({
        host: target.host,
        port: target.port,
        username: 'mssh-agent-host-key-scan',
        readyTimeout: timeoutMs,
        tryKeyboard: false,
        algorithms: { serverHostKey: [algorithm as 'ssh-ed25519'] },
        hostVerifier: (key: Buffer) => {
          finish({ key: Buffer.from(key) });
          return false;
        },
      });
    } catch (err) {
      finish({ error: err as Error });
    }
  });
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EADDRNOTAVAIL',
]);

/**
 * The target's host keys as OpenSSH lines without comment, in algorithm order, deduplicated.
 * Throws AGT_ERR_TARGET_UNREACHABLE when nothing answers, AGT_ERR_TARGET_NOT_SSH when no key was shown.
 */
export async function scanHostKeys(target: HostPort, timeoutMs = DEFAULT_SCAN_TIMEOUT_MS): Promise<string[]> {
  const results = await Promise.all(HOST_KEY_ALGORITHMS.map((alg) => scanOne(target, alg, timeoutMs)));
  const lines: string[] = [];
  for (const r of results) {
    if ('key' in r) {
      try {
        const line = keyLineFromBlob(r.key);
        if (!lines.includes(line)) lines.push(line);
      } catch {
        // A malformed key blob: ignore this algorithm.
      }
    }
  }
  if (lines.length > 0) return lines;
  const where = formatHostPort(target);
  const errors = results.map((r) => ('error' in r ? r.error : null)).filter((e): e is Error => e !== null);
  const unreachable = errors.find((e) => UNREACHABLE.has(errnoOf(e) ?? ''));
  if (unreachable) {
    throw new AgentError(
      'AGT_ERR_TARGET_UNREACHABLE',
      `cannot reach the SSH server at ${where} (${errnoOf(unreachable)}); start sshd there or pass --target HOST:PORT`,
      { cause: unreachable },
    );
  }
  throw new AgentError(
    'AGT_ERR_TARGET_NOT_SSH',
    `the server at ${where} showed no SSH host key (${errors[0]?.message ?? 'no answer'}); is --target an SSH server?`,
    { cause: errors[0] },
  );
}
