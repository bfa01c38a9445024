/**
 * credentials.json: one entry per relay URL (normalised `https://host:port`) with the pinned relay
 * certificate fingerprint and, while logged in, the token; plus which relay is current.
 * Logging out removes the token but keeps the pin, so a later login to the same relay is still checked.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { cliError } from '../errors.js';
import { readPrivateFile, writePrivateFile } from './secure-files.js';

const RelayEntry = z.object({
  url: z.string(),
  /** Pinned relay certificate fingerprint, `SHA256:...`. */
  fingerprint: z.string(),
  token: z.string().optional(),
  user: z.string().optional(),
  admin: z.boolean().optional(),
  /** ISO time the token expires. */
  expiresAt: z.string().optional(),
});
export type RelayEntry = z.infer<typeof RelayEntry>;

const CredentialsFile = z.object({
  version: z.literal(1),
  current: z.string().nullable(),
  relays: z.record(z.string(), RelayEntry),
});
type CredentialsFile = z.infer<typeof CredentialsFile>;

export const CREDENTIALS_FILE = 'credentials.json';

export class CredentialsStore {
  readonly path: string;
  constructor(readonly configDir: string) {
    this.path = join(configDir, CREDENTIALS_FILE);
  }

  private load(): CredentialsFile {
    const text = readPrivateFile(this.path);
    if (text === null) return { version: 1, current: null, relays: {} };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = CredentialsFile.safeParse(json);
    if (!parsed.success) {
      throw cliError(
        'CLI_ERR_CONFIG',
        `${this.path} is damaged`,
        `Delete it and log in again (\`mssh login --relay URL --user NAME\`).`,
      );
    }
    return parsed.data;
  }

  /**
   * What can still be used in a file `load` refuses: each relay entry that is valid on its own, and the
   * current relay if named. Nothing when the file is not JSON or cannot be read. For `mssh logout`, which
   * revokes what it can find before reporting the damage.
   */
  salvage(): { current: string | null; relays: Record<string, RelayEntry> } {
    const none = { current: null, relays: {} };
    let json: unknown;
    try {
      const text = readPrivateFile(this.path);
      if (text === null) return none;
      json = JSON.parse(text);
    } catch {
      return none; // unreadable or not JSON: load() already said so, with its code
    }
    if (typeof json !== 'object' || json === null) return none;
    const { current, relays } = json as { current?: unknown; relays?: unknown };
    const found: Record<string, RelayEntry> = {};
    if (typeof relays === 'object' && relays !== null) {
      for (const [url, v] of Object.entries(relays)) {
        const e = RelayEntry.safeParse(v);
        if (e.success && e.data.url === url) found[url] = e.data;
      }
    }
    return { current: typeof current === 'string' ? current : null, relays: found };
  }

  private save(data: CredentialsFile): void {
    writePrivateFile(this.path, JSON.stringify(data, null, 2) + '\n');
  }

  /** The relay commands use: `override` (MSSH_RELAY) if given, else the one last logged in to. */
  currentUrl(): string | null {
    return this.load().current;
  }

  get(url: string): RelayEntry | null {
    return this.load().relays[url] ?? null;
  }

  list(): RelayEntry[] {
    return Object.values(this.load().relays);
  }

  /** Store a successful login and make this relay current. */
  saveLogin(entry: Required<Pick<RelayEntry, 'url' | 'fingerprint' | 'token' | 'user' | 'admin' | 'expiresAt'>>): void {
    const data = this.load();
    data.relays[entry.url] = { ...entry };
    data.current = entry.url;
    this.save(data);
  }

  /** Replace the pinned fingerprint (used when a CA-valid relay certificate was renewed). */
  updatePin(url: string, fingerprint: string): void {
    const data = this.load();
    const e = data.relays[url];
    if (!e) return;
    e.fingerprint = fingerprint;
    this.save(data);
  }

  /** Forget the token (the pin stays). */
  clearToken(url: string): void {
    const data = this.load();
    const e = data.relays[url];
    if (e) data.relays[url] = { url: e.url, fingerprint: e.fingerprint };
    this.save(data);
  }
}
