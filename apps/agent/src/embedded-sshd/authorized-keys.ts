/**
 * The embedded SSH server's authorized_keys: parsing OpenSSH lines (with or without options), and the
 * `mssh-agent authorize add|list|remove` operations on <stateDir>/authorized_keys.
 *
 * Options are honoured where the embedded server can enforce them (restrict, no-pty, no-port-forwarding,
 * no-agent-forwarding, no-x11-forwarding, command="..."); a line carrying any other option (from=,
 * environment=, permitopen=, cert-authority, ...) is skipped, so a restriction is never silently dropped.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { writePrivateFile } from '@mssh/cli-kit';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { fingerprintBlob, parseSshPublicKeyLine } from '@mssh/protocol';
import { sshdError } from './errors.js';

const { utils } = ssh2;

export const AUTHORIZED_KEYS_FILE = 'authorized_keys';

export interface KeyOptions {
  noPty: boolean;
  noPortForwarding: boolean;
  noAgentForwarding: boolean;
  noX11Forwarding: boolean;
  /** Forced command: runs instead of whatever the client asked for (SSH_ORIGINAL_COMMAND holds that). */
  command?: string;
}

export interface AuthorizedKey {
  type: string;
  blob: Buffer;
  /** "SHA256:..." as ssh-keygen -l prints it. */
  fingerprint: string;
  comment: string;
  /** Raw options field as written, '' when none. */
  optionsText: string;
  options: KeyOptions;
  /** "<type> <base64>" without options or comment. */
  keyLine: string;
  /** 1-based line number in the file it came from (0 for keys not from a file). */
  lineNo: number;
}

export interface SkippedLine {
  lineNo: number;
  reason: string;
}

export type ParsedLine = { kind: 'blank' } | { kind: 'key'; key: AuthorizedKey } | { kind: 'invalid'; reason: string };

const KEY_TYPE_RE =
  /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com)$/;

const NO_OPTIONS: KeyOptions = {
  noPty: false,
  noPortForwarding: false,
  noAgentForwarding: false,
  noX11Forwarding: false,
};

/** Split the options field (up to the first unquoted blank) from the rest of the line. */
function splitOptions(line: string): { optionsText: string; rest: string } | null {
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inQuote) {
      if (c === '\\' && line[i + 1] === '"') i++;
      else if (c === '"') inQuote = false;
    } else if (c === '"') {
      inQuote = true;
    } else if (c === ' ' || c === '\t') {
      return { optionsText: line.slice(0, i), rest: line.slice(i + 1).trim() };
    }
  }
  return null;
}

function parseOptions(text: string): { options: KeyOptions } | { error: string } {
  const opts: KeyOptions = { ...NO_OPTIONS };
  const items: string[] = [];
  let cur = '';
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuote) {
      if (c === '\\' && text[i + 1] === '"') {
        cur += '\\"';
        i++;
        continue;
      }
      if (c === '"') inQuote = false;
      cur += c;
    } else if (c === '"') {
      inQuote = true;
      cur += c;
    } else if (c === ',') {
      items.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (inQuote) return { error: 'unterminated quote in the options' };
  items.push(cur);
  for (const item of items) {
    const eq = item.indexOf('=');
    const name = (eq === -1 ? item : item.slice(0, eq)).toLowerCase();
    const rawValue = eq === -1 ? undefined : item.slice(eq + 1);
    switch (name) {
      case 'restrict':
        opts.noPty = opts.noPortForwarding = opts.noAgentForwarding = opts.noX11Forwarding = true;
        break;
      case 'no-pty':
        opts.noPty = true;
        break;
      case 'pty':
        opts.noPty = false;
        break;
      case 'no-port-forwarding':
        opts.noPortForwarding = true;
        break;
      case 'port-forwarding':
        opts.noPortForwarding = false;
        break;
      case 'no-agent-forwarding':
        opts.noAgentForwarding = true;
        break;
      case 'agent-forwarding':
        opts.noAgentForwarding = false;
        break;
      case 'no-x11-forwarding':
        opts.noX11Forwarding = true;
        break;
      case 'x11-forwarding':
        opts.noX11Forwarding = false;
        break;
      case 'no-user-rc':
      case 'user-rc':
        break; // the embedded server never runs ~/.ssh/rc
      case 'command': {
        if (rawValue === undefined || !rawValue.startsWith('"') || !rawValue.endsWith('"') || rawValue.length < 2) {
          return { error: 'command= needs a double-quoted value' };
        }
        opts.command = rawValue.slice(1, -1).replace(/\\"/g, '"');
        break;
      }
      default:
        return { error: `option "${name}" is not supported by the embedded SSH server` };
    }
  }
  return { options: opts };
}

/** Parse one authorized_keys line. Comments and blank lines are 'blank'. */
export function parseAuthorizedKeysLine(rawLine: string, lineNo = 0): ParsedLine {
  const line = rawLine.trim();
  if (line === '' || line.startsWith('#')) return { kind: 'blank' };
  let optionsText = '';
  let rest = line;
  let options = NO_OPTIONS;
  const first = line.split(/\s+/, 1)[0]!;
  if (!KEY_TYPE_RE.test(first)) {
    const split = splitOptions(line);
    if (!split) return { kind: 'invalid', reason: 'no key type found' };
    optionsText = split.optionsText;
    rest = split.rest;
    const parsed = parseOptions(optionsText);
    if ('error' in parsed) return { kind: 'invalid', reason: parsed.error };
    options = parsed.options;
  }
  const parts = rest.split(/\s+/);
  const type = parts[0] ?? '';
  if (!KEY_TYPE_RE.test(type)) return { kind: 'invalid', reason: `unknown key type "${type.slice(0, 40)}"` };
  if (type.endsWith('-cert-v01@openssh.com')) return { kind: 'invalid', reason: 'certificates are not supported' };
  const key = parseSshPublicKeyLine(rest);
  if (!key) return { kind: 'invalid', reason: 'the key data is malformed' };
  const keyLine = `${key.type} ${key.blob.toString('base64')}`;
  const check = utils.parseKey(keyLine);
  if (check instanceof Error)
    return { kind: 'invalid', reason: `key type ${type} is not supported (${check.message})` };
  return {
    kind: 'key',
    key: {
      type: key.type,
      blob: key.blob,
      fingerprint: fingerprintBlob(key.blob),
      comment: parts.slice(2).join(' '),
      optionsText,
      options: { ...options },
      keyLine,
      lineNo,
    },
  };
}

export function parseAuthorizedKeys(text: string): { keys: AuthorizedKey[]; skipped: SkippedLine[] } {
  const keys: AuthorizedKey[] = [];
  const skipped: SkippedLine[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const p = parseAuthorizedKeysLine(line, i + 1);
    if (p.kind === 'key') keys.push(p.key);
    else if (p.kind === 'invalid') skipped.push({ lineNo: i + 1, reason: p.reason });
  });
  return { keys, skipped };
}

export function authorizedKeysPath(stateDir: string): string {
  return join(stateDir, AUTHORIZED_KEYS_FILE);
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Keys in <stateDir>/authorized_keys (missing file: none), plus the lines that were skipped and why. */
export async function listAuthorizedKeys(stateDir: string): Promise<{ keys: AuthorizedKey[]; skipped: SkippedLine[] }> {
  const path = authorizedKeysPath(stateDir);
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    throw sshdError('AGT_ERR_SSHD_STATE_DIR', `cannot read ${path}: ${(e as Error).message}; check its permissions`, e);
  }
  return parseAuthorizedKeys(text);
}

async function writeAtomically(stateDir: string, text: string): Promise<void> {
  const path = authorizedKeysPath(stateDir);
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    writePrivateFile(path, text);
  } catch (e) {
    throw sshdError(
      'AGT_ERR_AUTHKEY_WRITE',
      `cannot write ${path}: ${(e as Error).message}; check the state directory's permissions`,
      e,
    );
  }
}

/**
 * Add the key(s) of a public key file, or one OpenSSH public key line, to <stateDir>/authorized_keys.
 * Keys already present (same key blob) are left as they are. The file is rewritten atomically, mode 0600.
 */
export async function addAuthorizedKey(
  stateDir: string,
  keyFileOrLine: string,
): Promise<{ added: AuthorizedKey[]; alreadyPresent: AuthorizedKey[] }> {
  let text: string;
  let source: string;
  const asLine = parseAuthorizedKeysLine(keyFileOrLine);
  if (asLine.kind === 'key') {
    text = keyFileOrLine.trim();
    source = 'the given key';
  } else if (existsSync(keyFileOrLine)) {
    try {
      text = await readFile(keyFileOrLine, 'utf8');
    } catch (e) {
      throw sshdError('AGT_ERR_AUTHKEY_INVALID', `cannot read ${keyFileOrLine}: ${(e as Error).message}`, e);
    }
    source = keyFileOrLine;
  } else {
    throw sshdError(
      'AGT_ERR_AUTHKEY_INVALID',
      `"${keyFileOrLine.slice(0, 60)}" is neither a readable file nor an OpenSSH public key line; pass a .pub file such as ~/.ssh/id_ed25519.pub`,
    );
  }
  if (/PRIVATE KEY-----/.test(text)) {
    throw sshdError(
      'AGT_ERR_AUTHKEY_PRIVATE',
      `${source} is a private key; pass the public key (the .pub file) instead`,
    );
  }
  const { keys: incoming, skipped } = parseAuthorizedKeys(text);
  if (skipped.length > 0 || incoming.length === 0) {
    const why = skipped[0] ? `line ${skipped[0].lineNo}: ${skipped[0].reason}` : 'it contains no key';
    throw sshdError(
      'AGT_ERR_AUTHKEY_INVALID',
      `${source} is not a usable OpenSSH public key (${why}); pass a .pub file such as ~/.ssh/id_ed25519.pub`,
    );
  }
  const path = authorizedKeysPath(stateDir);
  let existingText: string;
  try {
    existingText = await readText(path);
  } catch (e) {
    throw sshdError('AGT_ERR_AUTHKEY_WRITE', `cannot read ${path}: ${(e as Error).message}; check its permissions`, e);
  }
  const existing = parseAuthorizedKeys(existingText).keys;
  const added: AuthorizedKey[] = [];
  const alreadyPresent: AuthorizedKey[] = [];
  const newLines: string[] = [];
  for (const k of incoming) {
    const same = existing.find((e) => e.blob.equals(k.blob)) ?? added.find((e) => e.blob.equals(k.blob));
    if (same) {
      alreadyPresent.push(same);
      continue;
    }
    added.push(k);
    newLines.push([k.optionsText, k.keyLine, k.comment].filter((s) => s !== '').join(' '));
  }
  if (newLines.length > 0) {
    const base = existingText === '' || existingText.endsWith('\n') ? existingText : existingText + '\n';
    await writeAtomically(stateDir, base + newLines.join('\n') + '\n');
  }
  return { added, alreadyPresent };
}

/**
 * Remove every key whose fingerprint ("SHA256:..." or the part after it) or comment equals the argument.
 * Other lines (comments, keys, skipped lines) are kept verbatim.
 */
export async function removeAuthorizedKey(
  stateDir: string,
  fingerprintOrComment: string,
): Promise<{ removed: AuthorizedKey[] }> {
  const path = authorizedKeysPath(stateDir);
  const wanted = fingerprintOrComment.trim();
  const wantedFp = wanted.startsWith('SHA256:') ? wanted : `SHA256:${wanted}`;
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    throw sshdError('AGT_ERR_AUTHKEY_WRITE', `cannot read ${path}: ${(e as Error).message}; check its permissions`, e);
  }
  const removed: AuthorizedKey[] = [];
  const kept: string[] = [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    const p = parseAuthorizedKeysLine(line, i + 1);
    if (wanted !== '' && p.kind === 'key' && (p.key.fingerprint === wantedFp || p.key.comment === wanted))
      removed.push(p.key);
    else kept.push(line);
  });
  if (removed.length === 0) {
    throw sshdError(
      'AGT_ERR_AUTHKEY_NOT_FOUND',
      `no key in ${path} has the fingerprint or comment "${wanted.slice(0, 80)}"; run \`mssh-agent authorize list\` to see them`,
    );
  }
  await writeAtomically(stateDir, kept.length ? kept.join('\n') + '\n' : '');
  return { removed };
}

/** One line for `authorize list`: "SHA256:... ssh-ed25519 comment [options]". */
export function formatAuthorizedKey(k: AuthorizedKey): string {
  return [k.fingerprint, k.type, k.comment || '(no comment)', k.optionsText ? `[${k.optionsText}]` : '']
    .filter((s) => s !== '')
    .join(' ');
}
