/**
 * Every reach into ssh2's private parts (ssh2 1.x), in one file, so that an ssh2 upgrade that moves them
 * breaks one file and its test (ssh2-internals.test.ts runs each of them against a real ssh2 connection
 * over loopback), not two servers silently:
 *
 *   Connection._sock              the socket or Duplex the connection runs on (server-core's registry key)
 *   Connection._protocol          channelOpenFail, _packetRW: a channel-open failure or a disconnect with text
 *   ssh2/lib/protocol/utils.js    sendPacket: sends a packet ssh2 built for us
 *   Channel._protocol.exitStatus  an exit-status on an SFTP channel (ssh2's SFTP object has no exit())
 *
 * Each accessor returns null (or false) when the part is not there; callers fall back to the public API
 * where there is one.
 */
import { createRequire } from 'node:module';
import type { Connection } from 'ssh2';

/** The stream ssh2 runs `client` on (what was given to injectSocket), or null when ssh2 no longer says. */
export function socketOf(client: Connection): object | null {
  const sock = (client as unknown as { _sock?: unknown })._sock;
  return typeof sock === 'object' && sock !== null ? sock : null;
}

export interface Ssh2Protocol {
  channelOpenFail(remote: number, reason: number, desc: string): void;
  _packetRW?: {
    write: {
      allocStartKEX: number;
      alloc(n: number, force?: boolean): Buffer;
      finalize(p: Buffer, force?: boolean): Buffer;
    };
  };
}

/** ssh2's Protocol object of a connection, when it has the method we use. */
export function protocolOf(client: Connection | undefined): Ssh2Protocol | null {
  const p = (client as unknown as { _protocol?: Ssh2Protocol } | undefined)?._protocol;
  return p && typeof p.channelOpenFail === 'function' ? p : null;
}

let sendPacket: ((proto: unknown, packet: Buffer, bypass?: boolean) => void) | null | undefined;
/** ssh2's internal sendPacket(proto, packet, bypass), or null when it cannot be loaded. */
export function packetSender(): typeof sendPacket {
  if (sendPacket === undefined) {
    try {
      sendPacket =
        (createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as { sendPacket?: typeof sendPacket })
          .sendPacket ?? null;
    } catch {
      sendPacket = null;
    }
  }
  return sendPacket;
}

/**
 * Send exit-status `code` on an open channel (an SFTP channel: ssh2's SFTP object has no public exit();
 * its channel protocol does). False when the channel is not open or ssh2 no longer has the method.
 */
export function sendExitStatus(channel: object, code: number): boolean {
  const ch = channel as {
    _protocol?: { exitStatus?: (id: number, code: number) => void };
    outgoing?: { id: number; state: string };
  };
  if (ch.outgoing?.state !== 'open' || typeof ch._protocol?.exitStatus !== 'function') return false;
  ch._protocol.exitStatus(ch.outgoing.id, code);
  return true;
}
