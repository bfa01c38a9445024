/**
 * A refusal told inside the SSH stream, for `mssh proxy`. OpenSSH shows its ProxyCommand's stderr only
 * while it runs in the foreground: a ControlPersist master (Ansible's default) sends it to /dev/null, and
 * every refusal then reached the user as "kex_exchange_identification: Connection closed by remote host".
 * So before any byte of the target's sshd has been passed on, the proxy answers as a minimal SSH server:
 * its version line, then one unencrypted SSH_MSG_DISCONNECT packet (RFC 4253 sections 4.2, 6 and 11.1),
 * which OpenSSH prints as "Received disconnect from UNKNOWN port 65535:11: mssh: CODE: message hint".
 *
 *   packet = uint32 packet_length | byte padding_length | payload | padding (>= 4 bytes)
 *            with 4 + 1 + payload + padding a multiple of 8 (no cipher yet)
 *   payload = byte 1 (SSH_MSG_DISCONNECT) | uint32 reason | string description | string language ("")
 */
import { randomBytes } from 'node:crypto';

/** The version line the proxy answers with (RFC 4253 4.2: "SSH-2.0-softwareversion", CR LF). */
export const DISCONNECT_VERSION_LINE = 'SSH-2.0-mssh_proxy\r\n';
export const SSH_MSG_DISCONNECT = 1;
/** SSH_DISCONNECT_BY_APPLICATION: the reason code for every mssh refusal (the text carries the mssh code). */
export const SSH_DISCONNECT_BY_APPLICATION = 11;
/** OpenSSH prints at most 400 characters of the description. */
export const DISCONNECT_TEXT_MAX = 400;

/** The description: printable ASCII only (escape sequences and control characters removed), at most 400 characters. */
export function disconnectText(text: string): string {
  const clean = text
    // eslint-disable-next-line no-control-regex -- escape sequences are what is removed here
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '') // CSI sequences (colours, cursor moves)
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '')
    .replace(/ {2,}/g, ' ')
    .trim();
  return clean.length > DISCONNECT_TEXT_MAX ? `${clean.slice(0, DISCONNECT_TEXT_MAX - 3)}...` : clean;
}

/** The bytes to write: the version line and one SSH_MSG_DISCONNECT packet carrying `text` (sanitised). */
export function sshDisconnectBytes(text: string, reason = SSH_DISCONNECT_BY_APPLICATION): Buffer {
  return Buffer.concat([Buffer.from(DISCONNECT_VERSION_LINE, 'latin1'), sshDisconnectPacket(text, reason)]);
}

/**
 * The SSH_MSG_DISCONNECT packet alone, for when the target's version line has passed already: before the
 * first NEWKEYS packets are plaintext, and OpenSSH reads a disconnect in the middle of the key exchange
 * too (`mssh proxy` sends it in place of a server key exchange reply whose host key it refuses).
 */
export function sshDisconnectPacket(text: string, reason = SSH_DISCONNECT_BY_APPLICATION): Buffer {
  const desc = Buffer.from(disconnectText(text), 'utf8');
  const payload = Buffer.alloc(1 + 4 + 4 + desc.length + 4);
  let o = payload.writeUInt8(SSH_MSG_DISCONNECT, 0);
  o = payload.writeUInt32BE(reason, o);
  o = payload.writeUInt32BE(desc.length, o);
  o += desc.copy(payload, o);
  payload.writeUInt32BE(0, o); // language tag: empty
  let padding = 8 - ((4 + 1 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + payload.length + padding, 0);
  head.writeUInt8(padding, 4);
  return Buffer.concat([head, payload, randomBytes(padding)]);
}
