/**
 * Where the agent sends each session: its configured SSH server (a TCP address) and nothing else. The
 * dial code only sees this interface, so another target (the embedded SSH server) plugs in the same way.
 */
import type { Duplex } from 'node:stream';

export interface SessionInfo {
  sessionId: string;
  /** mssh user name as the relay reports it (not the SSH login user). */
  user: string;
}

export interface SessionTarget {
  /** For logs: "127.0.0.1:22". */
  readonly description: string;
  /** What kind of target it is, reported to the relay as a fact (shown, never used by grants). */
  readonly mode?: 'sshd' | 'embedded';
  /** The target's SSH host public keys (OpenSSH lines, no comment), as current as possible. */
  hostKeys(): Promise<string[]>;
  /** Connect one session; rejects with AgentError AGT_ERR_TARGET_UNREACHABLE when the target refuses. */
  open(session: SessionInfo): Promise<Duplex>;
}
