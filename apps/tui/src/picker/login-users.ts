/**
 * The SSH login user per machine, as set with `u` in the picker: `tui-users.json` in the config dir
 * (0600). The default for a machine nobody set is `user = NAME` from the config dir's `config` file
 * (`~/.config/mssh/config`), else the local user name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readPrivateFile, writePrivateFile } from '../config/secure-files.js';

const UsersFile = z.object({ version: z.literal(1), hosts: z.record(z.string(), z.string()) });

/** The value of the first `user = NAME` line (case-insensitive key, `#` comments), or null. */
export function parseUserLine(text: string): string | null {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = line.match(/^user\s*=\s*(\S+)$/i);
    if (m) return m[1]!;
  }
  return null;
}

export function defaultLoginUser(configDir: string, localUser: string): string {
  try {
    return parseUserLine(readFileSync(join(configDir, 'config'), 'utf8')) ?? localUser;
  } catch {
    return localUser;
  }
}

export const LOGIN_USER_RE = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$/;

export class LoginUsers {
  readonly path: string;
  private readonly fallback: string;
  constructor(configDir: string, localUser: string) {
    this.path = join(configDir, 'tui-users.json');
    this.fallback = defaultLoginUser(configDir, localUser);
  }

  private load(): Record<string, string> {
    const text = readPrivateFile(this.path);
    if (text === null) return {};
    try {
      const parsed = UsersFile.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data.hosts : {};
    } catch {
      return {};
    }
  }

  get(host: string): string {
    return this.load()[host] ?? this.fallback;
  }

  /** Remember `user` for `host`; an empty user goes back to the default. */
  set(host: string, user: string): void {
    const hosts = this.load();
    if (user) hosts[host] = user;
    else delete hosts[host];
    writePrivateFile(this.path, JSON.stringify({ version: 1, hosts }, null, 2) + '\n');
  }
}
