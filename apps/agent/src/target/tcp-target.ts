/**
 * The usual target: an SSH server at a fixed TCP address (default 127.0.0.1:22). Sessions are TCP
 * connections to exactly that address; the relay cannot make the agent dial anything else.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type pino from 'pino';
import { AgentError, errnoOf } from '../errors.js';
import { formatHostPort, type HostPort } from '../dial/endpoint.js';
import { DEFAULT_SCAN_TIMEOUT_MS, scanHostKeys } from './host-keys.js';
import type { SessionInfo, SessionTarget } from './session-target.js';

export const DEFAULT_TARGET_CONNECT_TIMEOUT_MS = 8_000;

export interface TcpTargetOptions {
  address: HostPort;
  logger: pino.Logger;
  /** Host keys known from before (agent.json): reported when a fresh scan fails. */
  knownHostKeys?: string[];
  /** Called when a scan finds keys different from the known ones (to persist them). */
  onHostKeysChanged?: (keys: string[]) => void;
  connectTimeoutMs?: number;
  scanTimeoutMs?: number;
}

export class TcpTarget implements SessionTarget {
  readonly mode = 'sshd' as const;
  readonly description: string;
  private known: string[];

  constructor(private readonly o: TcpTargetOptions) {
    this.description = formatHostPort(o.address);
    this.known = [...(o.knownHostKeys ?? [])];
  }

  async hostKeys(): Promise<string[]> {
    try {
      const keys = await scanHostKeys(this.o.address, this.o.scanTimeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS);
      const changed = keys.length !== this.known.length || keys.some((k) => !this.known.includes(k));
      if (changed) {
        if (this.known.length > 0)
          this.o.logger.warn(
            { target: this.description, keys },
            `the host keys of ${this.description} changed; reporting the new ones to the relay`,
          );
        this.known = keys;
        try {
          this.o.onHostKeysChanged?.(keys);
        } catch (err) {
          this.o.logger.warn({ err: (err as Error).message }, 'could not store the new host keys');
        }
      }
      return keys;
    } catch (err) {
      this.o.logger.warn(
        { target: this.description, err: (err as Error).message },
        `cannot scan the host keys of ${this.description}; reporting the last known ones`,
      );
      return [...this.known];
    }
  }

  open(session: SessionInfo): Promise<Duplex> {
    const timeoutMs = this.o.connectTimeoutMs ?? DEFAULT_TARGET_CONNECT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      // allowHalfOpen: when sshd ends its side the client may still send (half-close preserved).
      const sock = net.connect({ host: this.o.address.host, port: this.o.address.port, allowHalfOpen: true });
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        const code = errnoOf(err) ?? err.message;
        reject(
          new AgentError(
            'AGT_ERR_TARGET_UNREACHABLE',
            `cannot connect to the SSH server at ${this.description} (${code})`,
            { cause: err },
          ),
        );
      };
      const timer = setTimeout(
        () => fail(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
      timer.unref();
      // Stays attached: once settled it ignores errors, so a late one is never unhandled.
      sock.on('error', fail);
      sock.once('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.setNoDelay(true);
        this.o.logger.debug({ sessionId: session.sessionId }, 'target connected');
        resolve(sock);
      });
    });
  }
}
