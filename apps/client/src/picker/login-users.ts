/**
 * The SSH login user per machine, as set with `u` in the picker: `tui-users.json` in the config dir
 * (0600). The default for a machine nobody set is `user = NAME` from the config dir's `config` file
 * (`~/.config/mssh/config`), else the local user name.
 *
 * A file that is not valid JSON of this shape is never overwritten: it is renamed to
 * `tui-users.json.corrupt-<time>` (kept, to copy entries back by hand), reported once (the picker's status
 * line and tui.log), and the picker goes on with no remembered users. A file that cannot be read at all
 * (permissions) is an error (CLI_ERR_CONFIG), as before.
 */
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readPrivateFile, writePrivateFile } from '../config/secure-files.js';
import { cliError } from '../errors.js';

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

export interface DamagedUsersFile {
  path: string;
  /** Where the damaged file was moved; null when it could not be moved (then nothing is saved over it). */
  movedTo: string | null;
  reason: string;
}

export class LoginUsers {
  readonly path: string;
  private readonly fallback: string;
  private notice: string | null = null;
  /** Set when the damaged file could not be moved aside: `set` then refuses rather than overwrite it. */
  private stuck: DamagedUsersFile | null = null;
  constructor(
    configDir: string,
    localUser: string,
    private readonly opts: { onDamaged?: (d: DamagedUsersFile) => void; now?: () => Date } = {},
  ) {
    this.path = join(configDir, 'tui-users.json');
    this.fallback = defaultLoginUser(configDir, localUser);
  }

  private load(): Record<string, string> {
    const text = readPrivateFile(this.path);
    if (text === null) return {};
    let json: unknown;
    let reason: string;
    try {
      json = JSON.parse(text);
      const parsed = UsersFile.safeParse(json);
      if (parsed.success) {
        this.stuck = null;
        return parsed.data.hosts;
      }
      reason = `not a version 1 users file (${parsed.error.issues[0]?.path.join('.') || 'top level'}: ${parsed.error.issues[0]?.message})`;
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      reason = `not JSON (${e.message})`;
    }
    if (!this.stuck) this.setAside(reason); // reported once; a stuck file stays where it is
    return {};
  }

  /** Move the damaged file out of the way (kept beside, as .corrupt-<time>) so that a save cannot erase it. */
  private setAside(reason: string): void {
    const stamp = (this.opts.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
    const movedTo = `${this.path}.corrupt-${stamp}`;
    let d: DamagedUsersFile;
    try {
      renameSync(this.path, movedTo);
      d = { path: this.path, movedTo, reason };
      this.notice = `${this.path} was damaged (${reason}); kept as ${movedTo}, login users start empty.`;
    } catch (e) {
      d = {
        path: this.path,
        movedTo: null,
        reason: `${reason}; moving it aside failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      };
      this.stuck = d;
      this.notice = `${this.path} is damaged (${d.reason}); login users are not saved until you fix or remove it.`;
    }
    this.opts.onDamaged?.(d);
  }

  /** A message about a damaged file found since the last call, once; null otherwise. */
  takeNotice(): string | null {
    const n = this.notice;
    this.notice = null;
    return n;
  }

  get(host: string): string {
    return this.load()[host] ?? this.fallback;
  }

  /** Remember `user` for `host`; an empty user goes back to the default. */
  set(host: string, user: string): void {
    const hosts = this.load();
    if (this.stuck)
      throw cliError(
        'CLI_ERR_CONFIG',
        `${this.path} is damaged (${this.stuck.reason}); not saving over it`,
        `Fix or remove ${this.path}, then set the login user again.`,
      );
    if (user) hosts[host] = user;
    else delete hosts[host];
    writePrivateFile(this.path, JSON.stringify({ version: 1, hosts }, null, 2) + '\n');
  }
}
