/**
 * `mssh keys add [FILE] | list | remove FINGERPRINT|FILE`: the SSH public keys that log you in to the
 * relay's SSH jump listener (`ssh -J you@relay:2222 login@machine`), as your mssh user.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fingerprintBlob, parseSshPublicKeyLine, sanitizeForTerminal } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { printJson, println, withLoggedInRelay, type CliContext } from './context.js';

const DEFAULT_PUBLIC_KEYS = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_ed25519_sk.pub', 'id_ecdsa_sk.pub', 'id_rsa.pub'];

/** The public key file to use: FILE (or FILE.pub next to a private key), else the first ~/.ssh/id_*.pub. */
export function publicKeyFile(home: string, file: string | undefined): string {
  if (file !== undefined) {
    const p = resolve(file);
    if (!p.endsWith('.pub') && existsSync(`${p}.pub`)) return `${p}.pub`;
    if (!existsSync(p))
      throw cliError(
        'CLI_ERR_KEY_FILE',
        `the key file ${p} does not exist`,
        'Give the path of your public key, e.g. ~/.ssh/id_ed25519.pub.',
      );
    return p;
  }
  for (const f of DEFAULT_PUBLIC_KEYS) {
    const p = join(home, '.ssh', f);
    if (existsSync(p)) return p;
  }
  throw cliError(
    'CLI_ERR_KEY_FILE',
    `no public key in ${join(home, '.ssh')} (${DEFAULT_PUBLIC_KEYS.join(', ')})`,
    'Create one with `ssh-keygen -t ed25519`, or give the file: `mssh keys add FILE.pub`.',
  );
}

/** The one OpenSSH public key line in a file. */
export function readPublicKeyLine(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw cliError(
      'CLI_ERR_KEY_FILE',
      `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      'Check the path and its permissions.',
      e,
    );
  }
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (!line || !parseSshPublicKeyLine(line)) {
    throw cliError(
      'CLI_ERR_KEY_FILE',
      `${path} does not hold an OpenSSH public key ("ssh-ed25519 AAAA... comment")`,
      'Give the .pub file, not the private key; `ssh-keygen -y -f KEY` prints the public key of a private one.',
    );
  }
  return line;
}

export async function keysAdd(ctx: CliContext, args: { file?: string }): Promise<number> {
  const path = publicKeyFile(ctx.config.home, args.file);
  const line = readPublicKeyLine(path);
  return withLoggedInRelay(ctx, async (client, entry) => {
    const k = await client.addSshKey(line);
    println(
      ctx.io.stdout,
      `Added ${sanitizeForTerminal(k.fingerprint)} (${sanitizeForTerminal(k.type)}${k.comment ? `, ${sanitizeForTerminal(k.comment)}` : ''}) for ${entry.user}.`,
    );
    // The host we reach the relay by, and the port its jump listener is actually bound to (as it reports).
    const host = new URL(client.url).hostname;
    if (k.jump === null) {
      println(
        ctx.io.stdout,
        `The relay's SSH jump listener is off, so \`ssh -J\` does not work yet; its admin turns it on with \`mssh-relay serve --ssh-listen HOST:PORT\`.`,
      );
    } else if (k.jump === undefined) {
      println(
        ctx.io.stdout,
        `Use it with: ssh -J ${entry.user}@${host}:PORT LOGIN@MACHINE, where PORT is the relay's SSH jump port (this relay does not report it; 2222 unless it set --ssh-listen: \`mssh-relay info\` on the relay).`,
      );
    } else {
      const at = `${host}:${k.jump.port}`;
      println(
        ctx.io.stdout,
        `Use it with: ssh -J ${entry.user}@${at} LOGIN@MACHINE; \`ssh -p ${k.jump.port} ${entry.user}@${host}\` lists the machines.`,
      );
    }
    return 0;
  });
}

export async function keysList(ctx: CliContext, args: { json: boolean } = { json: false }): Promise<number> {
  return withLoggedInRelay(ctx, async (client, entry) => {
    const keys = await client.listSshKeys();
    if (args.json) {
      printJson(ctx, keys);
      return 0;
    }
    if (keys.length === 0) {
      println(ctx.io.stderr, `No SSH keys registered for ${entry.user}; add one with \`mssh keys add\`.`);
      return 0;
    }
    for (const k of keys) {
      println(
        ctx.io.stdout,
        `${sanitizeForTerminal(k.fingerprint)}  ${sanitizeForTerminal(k.type)}  ${sanitizeForTerminal(k.comment ?? '-')}  ${sanitizeForTerminal(k.createdAt)}`,
      );
    }
    return 0;
  });
}

export async function keysRemove(ctx: CliContext, args: { key: string }): Promise<number> {
  let fingerprint: string;
  if (/^SHA256:[A-Za-z0-9+/]{43}$/.test(args.key)) {
    fingerprint = args.key;
  } else {
    const line = readPublicKeyLine(publicKeyFile(ctx.config.home, args.key));
    fingerprint = fingerprintBlob(parseSshPublicKeyLine(line)!.blob);
  }
  return withLoggedInRelay(ctx, async (client) => {
    await client.removeSshKey(fingerprint);
    println(ctx.io.stdout, `Removed ${fingerprint}; it no longer logs in to the relay's SSH jump listener.`);
    return 0;
  });
}
