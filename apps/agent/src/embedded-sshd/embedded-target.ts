/**
 * The embedded SSH server as a session target: what `mssh-agent run --target embedded` (or `auto` with no
 * sshd answering on 127.0.0.1:22) hands to the dial code instead of a TcpTarget.
 */
import type { Duplex } from 'node:stream';
import type { SessionInfo, SessionTarget } from '../target/session-target.js';
import type { EmbeddedSshd } from './server.js';

export class EmbeddedTarget implements SessionTarget {
  readonly mode = 'embedded' as const;
  readonly description = 'embedded SSH server';

  constructor(private readonly sshd: EmbeddedSshd) {}

  /** The embedded server's own host key (generated once, persisted in the state dir). */
  async hostKeys(): Promise<string[]> {
    return this.sshd.hostPublicKeys();
  }

  /** One SSH connection per relay session; never refuses (authentication happens inside SSH). */
  async open(session: SessionInfo): Promise<Duplex> {
    return this.sshd.openSession({ sessionId: session.sessionId, user: session.user });
  }

  close(): Promise<void> {
    return this.sshd.close();
  }
}
