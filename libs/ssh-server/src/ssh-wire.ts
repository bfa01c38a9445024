/**
 * Two SSH messages ssh2's server API sends without the text the user needs: a channel-open failure (its
 * `reject()` always sends an empty description, so OpenSSH prints `open failed: connect failed: `) and a
 * disconnect (`end()` sends none, so OpenSSH prints `Connection closed`). These send the same messages
 * with a description that names the relay's code, e.g. `RLY_ERR_NO_GRANT: ...`; OpenSSH shows both on
 * stderr even at LogLevel ERROR. They reach into ssh2's Protocol object (ssh2 1.x, through
 * ssh2-internals.ts); when that is not there they fall back to the plain API, without the text.
 */
import type { Connection } from 'ssh2';
import { sanitizeForTerminal } from '@mssh/protocol';
import { packetSender, protocolOf, type Ssh2Protocol } from './ssh2-internals.js';

/** RFC 4254 5.1 reason codes. */
export const OPEN_FAILURE = { ADMINISTRATIVELY_PROHIBITED: 1, CONNECT_FAILED: 2 } as const;
/** RFC 4253 11.1 reason codes. */
export const DISCONNECT = { SERVICE_NOT_AVAILABLE: 7, BY_APPLICATION: 11, NO_MORE_AUTH_METHODS_AVAILABLE: 14 } as const;

/** One line, printable, at most 300 characters: what goes into an SSH description string. */
export function sshDescription(text: string): string {
  return sanitizeForTerminal(text)
    .replace(/[\r\n]+/g, ' ')
    .slice(0, 300);
}

/**
 * Call ssh2's `reject()` for a channel open, with `reason` and `description` in the failure message
 * instead of ssh2's empty one.
 */
export function rejectChannelWith(
  client: Connection | undefined,
  reject: () => void,
  reason: number,
  description: string,
): void {
  const proto = protocolOf(client);
  if (!proto) return reject();
  const own = Object.prototype.hasOwnProperty.call(proto, 'channelOpenFail');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to be put back, and called with .call(proto)
  const original = proto.channelOpenFail;
  proto.channelOpenFail = (remote: number, _reason: number, _desc: string) =>
    original.call(proto, remote, reason, sshDescription(description));
  try {
    reject();
  } finally {
    if (own) proto.channelOpenFail = original;
    else delete (proto as Partial<Ssh2Protocol>).channelOpenFail;
  }
}

/** SSH_MSG_DISCONNECT with `description` (ssh2 sends an empty one), then the connection is ended. */
export function disconnectWith(client: Connection | undefined, reason: number, description: string): void {
  const proto = protocolOf(client);
  const send = packetSender();
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
