import { DEFAULT_RELAY_PORT } from '@mssh/protocol';
import { cliError } from '../errors.js';

/**
 * Normalise what the user typed as a relay address to `https://HOST:PORT` (the key credentials are
 * stored under). `relay.example.com` and `relay.example.com:9000` get https:// added; without a scheme
 * the port defaults to the relay's default (8443), with https:// to 443 as usual for URLs.
 */
export function normalizeRelayUrl(input: string): string {
  const raw = input.trim();
  const bad = (why: string) =>
    cliError(
      'CLI_ERR_BAD_RELAY_URL',
      `${JSON.stringify(raw.slice(0, 200))} is not a relay URL: ${why}`,
      'Use the form https://relay.example.com:8443.',
    );
  if (raw.length === 0) throw bad('it is empty');
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw);
  let url: URL;
  try {
    url = new URL(hasScheme ? raw : `https://${raw}`);
  } catch {
    throw bad('it cannot be parsed');
  }
  if (url.protocol !== 'https:') throw bad('the relay only speaks https://');
  if (url.username || url.password) throw bad('it must not contain a user name or password');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    throw bad('it must not have a path, query or fragment');
  if (!url.hostname) throw bad('it has no host name');
  const port = url.port ? Number(url.port) : hasScheme ? 443 : DEFAULT_RELAY_PORT;
  return `https://${url.hostname}:${port}`;
}

/** Host (without IPv6 brackets) and port of a normalised relay URL. */
export function relayHostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port ? Number(u.port) : 443 };
}

/** `SHA256:` + 43 base64 characters, as printed by `mssh-relay info`. */
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

export function parseFingerprint(input: string): string {
  const s = input.trim();
  if (!FINGERPRINT_RE.test(s)) {
    throw cliError(
      'CLI_ERR_BAD_FINGERPRINT',
      `${JSON.stringify(s.slice(0, 100))} is not a certificate fingerprint`,
      'Copy it exactly as `mssh-relay info` prints it: SHA256: followed by 43 characters.',
    );
  }
  return s;
}
