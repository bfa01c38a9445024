/**
 * credentials.json: one entry per relay URL (normalised `https://host:port`) with the pinned relay
 * certificate fingerprint and, while logged in, the token; plus which relay is current.
 * Logging out removes the token but keeps the pin, so a later login to the same relay is still checked.
 */
import { join } from 'node:path';
import { cliError } from '../errors.js';
import { readPrivateFile, writePrivateFile } from './secure-files.js';

export interface RelayEntry {
  url: string;
  /** Pinned relay certificate fingerprint, `SHA256:...`. */
  fingerprint: string;
  token?: string;
  user?: string;
  admin?: boolean;
  /** ISO time the token expires. */
  expiresAt?: string;
}

interface CredentialsFile {
  version: 1;
  current: string | null;
  relays: Record<string, RelayEntry>;
}

/*
 * Checked by hand, not with a schema library: `mssh proxy` reads this file at every OpenSSH connection and
 * runs from the lean entry (lean-main.ts). Unknown keys are dropped, as a schema would.
 */
const OPTIONAL_STRINGS = ['token', 'user', 'expiresAt'] as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A valid relay entry (only its known fields), or null. */
function relayEntryOf(v: unknown): RelayEntry | null {
  if (!isRecord(v) || typeof v.url !== 'string' || typeof v.fingerprint !== 'string') return null;
  const e: RelayEntry = { url: v.url, fingerprint: v.fingerprint };
  for (const k of OPTIONAL_STRINGS) {
    if (v[k] === undefined) continue;
    if (typeof v[k] !== 'string') return null;
    e[k] = v[k];
  }
  if (v.admin !== undefined) {
    if (typeof v.admin !== 'boolean') return null;
    e.admin = v.admin;
  }
  return e;
}

function credentialsFileOf(v: unknown): CredentialsFile | null {
  if (!isRecord(v) || v.version !== 1 || !isRecord(v.relays)) return null;
  if (v.current !== null && typeof v.current !== 'string') return null;
  const relays: Record<string, RelayEntry> = {};
  for (const [url, raw] of Object.entries(v.relays)) {
    const e = relayEntryOf(raw);
    if (!e) return null;
    relays[url] = e;
  }
  return { version: 1, current: v.current, relays };
}

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
    const parsed = credentialsFileOf(json);
    if (!parsed) {
      throw cliError(
        'CLI_ERR_CONFIG',
        `${this.path} is damaged`,
        `Delete it and log in again (\`mssh login --relay URL --user NAME\`).`,
      );
    }
    return parsed;
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
        const e = relayEntryOf(v);
        if (e && e.url === url) found[url] = e;
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
