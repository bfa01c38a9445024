/**
 * `mssh-agent authorize add|list|remove`: the public keys the embedded SSH server accepts
 * (<state-dir>/authorized_keys), from the command line.
 */
import { parseAuthorizeStateDir, type AuthorizeFlags } from '../config.js';
import { addAuthorizedKey, formatAuthorizedKey, listAuthorizedKeys, removeAuthorizedKey } from './authorized-keys.js';

export async function authorizeAdd(keyFile: string, flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { added, alreadyPresent } = await addAuthorizedKey(stateDir, keyFile);
  for (const k of added) process.stdout.write(`added ${formatAuthorizedKey(k)}\n`);
  for (const k of alreadyPresent) process.stdout.write(`already present ${formatAuthorizedKey(k)}\n`);
}

export async function authorizeList(flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { keys, skipped } = await listAuthorizedKeys(stateDir);
  for (const k of keys) process.stdout.write(`${formatAuthorizedKey(k)}\n`);
  if (keys.length === 0)
    process.stderr.write(
      `mssh-agent: no authorized keys in ${stateDir}; add one with \`mssh-agent authorize add KEY.pub --state-dir ${stateDir}\`\n`,
    );
  for (const s of skipped)
    process.stderr.write(`mssh-agent: warning: authorized_keys line ${s.lineNo} skipped: ${s.reason}\n`);
}

export async function authorizeRemove(what: string, flags: AuthorizeFlags): Promise<void> {
  const stateDir = parseAuthorizeStateDir(flags);
  const { removed } = await removeAuthorizedKey(stateDir, what);
  for (const k of removed) process.stdout.write(`removed ${formatAuthorizedKey(k)}\n`);
}
