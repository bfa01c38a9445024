/**
 * Turns the --target choice into a SessionTarget:
 *
 *   HOST:PORT  -> TcpTarget to that SSH server
 *   embedded   -> the agent's own SSH server (EmbeddedTarget)
 *   auto       -> TcpTarget to 127.0.0.1:22 when an SSH server answers there (banner within 1.5 s),
 *                 else the embedded server
 */
import net from 'node:net';
import type pino from 'pino';
import type { TargetChoice } from '../config.js';
import { AUTO_TCP_TARGET } from '../config.js';
import { formatHostPort, type HostPort } from '../dial/endpoint.js';
import { createEmbeddedSshd, EmbeddedTarget, type EmbeddedSshd } from '../embedded-sshd/index.js';
import type { SessionTarget } from './session-target.js';
import { TcpTarget } from './tcp-target.js';

export const SSH_PROBE_TIMEOUT_MS = 1_500;

/** Whether an SSH server answers at `address`: its identification line ("SSH-") arrives within timeoutMs. */
export function probeSshServer(address: HostPort, timeoutMs = SSH_PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: address.host, port: address.port });
    let got = '';
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    timer.unref();
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // The server may send other lines before its identification (RFC 4253 4.2); stop at 4 KiB.
      if (/(^|\n)SSH-/.test(got)) finish(true);
      else if (got.length > 4096) finish(false);
    });
  });
}

/** What `auto` resolves to: a fixed SSH server, or the embedded one. */
export type ResolvedTarget = { kind: 'tcp'; address: HostPort } | { kind: 'embedded' };

/** Resolve `auto` (probing 127.0.0.1:22); the other choices are returned as they are. */
export async function resolveTargetChoice(
  choice: TargetChoice,
  probeTimeoutMs = SSH_PROBE_TIMEOUT_MS,
): Promise<{ resolved: ResolvedTarget; why: string }> {
  if (choice.kind === 'tcp') return { resolved: choice, why: `--target ${formatHostPort(choice.address)}` };
  if (choice.kind === 'embedded') return { resolved: { kind: 'embedded' }, why: '--target embedded' };
  const where = formatHostPort(AUTO_TCP_TARGET);
  if (await probeSshServer(AUTO_TCP_TARGET, probeTimeoutMs)) {
    return {
      resolved: { kind: 'tcp', address: AUTO_TCP_TARGET },
      why: `--target auto: an SSH server answers on ${where}`,
    };
  }
  return { resolved: { kind: 'embedded' }, why: `--target auto: no SSH server answers on ${where}` };
}

/** One line for logs and the CLI: "target auto -> SSH server 127.0.0.1:22 (...)". */
export function describeResolution(choice: TargetChoice, resolved: ResolvedTarget, why: string): string {
  const to =
    resolved.kind === 'tcp' ? `the SSH server at ${formatHostPort(resolved.address)}` : 'the embedded SSH server';
  return `sessions go to ${to} (${why})`;
}

export interface OpenTargetOptions {
  stateDir: string;
  allowForwarding: boolean;
  logger: pino.Logger;
  knownHostKeys?: string[];
  onHostKeysChanged?: (keys: string[]) => void;
}

export interface OpenedTarget {
  target: SessionTarget;
  /** The embedded server, when that is the target. */
  sshd: EmbeddedSshd | null;
  /** Stop the embedded server (kills its sessions); nothing for a TCP target. */
  close(): Promise<void>;
}

/** Build the SessionTarget for a resolved target (starting the embedded server when needed). */
export async function openTarget(resolved: ResolvedTarget, o: OpenTargetOptions): Promise<OpenedTarget> {
  if (resolved.kind === 'tcp') {
    const target = new TcpTarget({
      address: resolved.address,
      logger: o.logger,
      knownHostKeys: o.knownHostKeys,
      onHostKeysChanged: o.onHostKeysChanged,
    });
    return { target, sshd: null, close: async () => undefined };
  }
  const sshd = await createEmbeddedSshd({ stateDir: o.stateDir, allowForwarding: o.allowForwarding, logger: o.logger });
  const target = new EmbeddedTarget(sshd);
  return { target, sshd, close: () => sshd.close() };
}
