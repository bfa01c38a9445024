/**
 * The one-line agent install (issue 20), as `mssh-relay agent enroll` and `mssh admin agents enroll` print
 * it: curl fetches the relay's install script pinned to the relay's public key (--pinnedpubkey; -k because
 * the relay's certificate is self-signed: the pin is what protects), and sh runs it as root with the token.
 * The script itself is served by the relay (apps/relay/src/agent-bundle/install-script.ts).
 */
import { PATHS } from '@mssh/protocol';

/** Single-quote a word for sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function installOneLiner(o: { relayUrl: string; publicKeyPin: string; token: string; name: string }): string {
  return (
    `curl -fsS --pinnedpubkey ${shQuote(o.publicKeyPin)} -k ${o.relayUrl}${PATHS.installScript}` +
    ` | sudo sh -s -- --token ${o.token} --name ${o.name}`
  );
}
