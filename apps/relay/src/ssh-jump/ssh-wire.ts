/**
 * Two SSH messages ssh2's server API sends without the text the user needs: a channel-open failure (its
 * `reject()` always sends an empty description, so OpenSSH prints `open failed: connect failed: `) and a
 * disconnect (`end()` sends none, so OpenSSH prints `Connection closed`). These send the same messages
 * with a description that names the relay's code, e.g. `RLY_ERR_NO_GRANT: ...`; OpenSSH shows both on
 * stderr even at LogLevel ERROR. They reach into ssh2's Protocol object (ssh2 1.x); when that is not
 * there they fall back to the plain API, without the text.
 */
import { createRequire } from 'node:module';
import type { Connection } from 'ssh2';
import { sanitizeForTerminal } from '@mssh/protocol';

/** RFC 4254 5.1 reason codes. */
export const OPEN_FAILURE = { ADMINISTRATIVELY_PROHIBITED: 1, CONNECT_FAILED: 2 } as const;
/** RFC 4253 11.1 reason codes. */
export const DISCONNECT = { SERVICE_NOT_AVAILABLE: 7, BY_APPLICATION: 11 } as const;

interface Ssh2Protocol {
  channelOpenFail(remote: number, reason: number, desc: string): void;
  _packetRW?: { write: { allocStartKEX: number; alloc(n: number, force?: boolean): Buffer; finalize(p: Buffer, force?: boolean): Buffer } };
}

function protocolOf(client: Connection | undefined): Ssh2Protocol | null {
  const p = (client as unknown as { _protocol?: Ssh2Protocol } | undefined)?._protocol;
  return p && typeof p.channelOpenFail === 'function' ? p : null;
}

/** One line, printable, at most 300 characters: what goes into an SSH description string. */
export function sshDescription(text: string): string {
  return sanitizeForTerminal(text).replace(/[\r\n]+/g, ' ').slice(0, 300);
}

/**
 * Call ssh2's `reject()` for a channel open, with `reason` and `description` in the failure message
 * instead of ssh2's empty one.
 */
export function rejectChannelWith(client: Connection | undefined, reject: () => void, reason: number, description: string): void {
  const proto = protocolOf(client);
  if (!proto) return reject();
  const own = Object.prototype.hasOwnProperty.call(proto, 'channelOpenFail');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to be put back, and called with .call(proto)
  const original = proto.channelOpenFail;
  proto.channelOpenFail = (remote: number, _reason: number, _desc: string) => original.call(proto, remote, reason, sshDescription(description));
  try {
    reject();
  } finally {
    if (own) proto.channelOpenFail = original;
    else delete (proto as Partial<Ssh2Protocol>).channelOpenFail;
  }
}

let sendPacket: ((proto: unknown, packet: Buffer, bypass?: boolean) => void) | null | undefined;
function sender(): typeof sendPacket {
  if (sendPacket === undefined) {
    try {
      sendPacket = (createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as { sendPacket?: typeof sendPacket }).sendPacket ?? null;
    } catch {
      sendPacket = null;
    }
  }
  return sendPacket;
}

/** SSH_MSG_DISCONNECT with `description` (ssh2 sends an empty one), then the connection is ended. */
export function disconnectWith(client: Connection | undefined, reason: number, description: string): void {
  const proto = protocolOf(client);
  const send = sender();
  try {
    if (proto?._packetRW && send) {
      const desc = Buffer.from(sshDescription(description), 'utf8');
      const w = proto._packetRW.write;
      let p = w.allocStartKEX;
      const packet = w.alloc(1 + 4 + 4 + desc.length + 4, true);
      packet[p] = 1; // SSH_MSG_DISCONNECT
      packet.writeUInt32BE(reason, ++p);
      packet.writeUInt32BE(desc.length, (p += 4));
      desc.copy(packet, (p += 4));
      packet.writeUInt32BE(0, p + desc.length); // language tag
      send(proto, w.finalize(packet, true), true);
    }
  } catch {
    // fall through to a plain end
  }
  try {
    client?.end();
  } catch {
    // already gone
  }
}
