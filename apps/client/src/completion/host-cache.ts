/**
 * Machine names for shell completion (`mssh __complete hosts`), from a short-lived cache of `mssh ls` in
 * the config directory: `<config dir>/completion-hosts.json` (0600), `{relay, fetchedAt, names}`.
 *
 *   fresh (younger than 60 s, same relay)  -> the cached names, no network
 *   older, missing, or another relay        -> ask the relay, bounded by `timeoutMs` (2 s): on success write
 *                                              the cache; on failure or timeout the old names (or none)
 *
 * Never throws and never waits longer than the bound: a completion must not hang the prompt, nor print
 * errors into it. Not logged in: no names.
 */
import { join } from 'node:path';
import { HOST_NAME_RE } from '@mssh/protocol';
import { readPrivateFile, writePrivateFile } from '../config/secure-files.js';
import { currentRelayUrl, openLoggedInRelay, type CliContext } from '../commands/context.js';

export const HOST_CACHE_FILE = 'completion-hosts.json';
export const HOST_CACHE_MAX_AGE_MS = 60_000;
export const HOST_REFRESH_TIMEOUT_MS = 2_000;

interface HostCache {
  relay: string;
  fetchedAt: number;
  names: string[];
}

function readCache(file: string): HostCache | null {
  try {
    const text = readPrivateFile(file);
    if (text === null) return null;
    const v = JSON.parse(text) as Partial<HostCache>;
    if (typeof v.relay !== 'string' || typeof v.fetchedAt !== 'number' || !Array.isArray(v.names)) return null;
    return { relay: v.relay, fetchedAt: v.fetchedAt, names: v.names.filter((n) => typeof n === 'string') };
  } catch {
    return null;
  }
}

/** Only well-formed names reach the shell (a name is also what completion inserts on the command line). */
const clean = (names: string[]) => [...new Set(names.filter((n) => HOST_NAME_RE.test(n)))].sort();

async function fetchNames(ctx: CliContext, timeoutMs: number): Promise<string[]> {
  const { client } = await openLoggedInRelay(ctx, { timeoutMs, onRetry: () => {} });
  try {
    return (await client.listHosts()).map((h) => h.name);
  } finally {
    void client.close().catch(() => {});
  }
}

export async function completionHostNames(
  ctx: CliContext,
  opts: { maxAgeMs?: number; timeoutMs?: number } = {},
): Promise<string[]> {
  const maxAgeMs = opts.maxAgeMs ?? HOST_CACHE_MAX_AGE_MS;
  const timeoutMs = opts.timeoutMs ?? HOST_REFRESH_TIMEOUT_MS;
  let relay: string;
  try {
    relay = currentRelayUrl(ctx);
  } catch {
    return [];
  }
  const file = join(ctx.config.configDir, HOST_CACHE_FILE);
  const cached = readCache(file);
  const now = ctx.now().getTime();
  const usable = cached && cached.relay === relay ? cached : null;
  if (usable && now - usable.fetchedAt >= 0 && now - usable.fetchedAt < maxAgeMs) return clean(usable.names);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  const fetched = fetchNames(ctx, timeoutMs).catch(() => null);
  const names = await Promise.race([fetched, timedOut]);
  clearTimeout(timer);
  if (names === null) return clean(usable?.names ?? []);
  try {
    writePrivateFile(file, JSON.stringify({ relay, fetchedAt: now, names: clean(names) }));
  } catch {
    /* a cache that cannot be written only means asking again next time */
  }
  return clean(names);
}
