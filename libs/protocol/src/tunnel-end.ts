/**
 * Why the relay ended a running tunnel on purpose, told to the client in the HTTP/2 RST_STREAM code of the
 * tunnel stream (the answer headers went out long before, so there is no status or body left to use).
 * The codes are outside HTTP/2's own range (0x0-0xd), so a client that does not know them sees an
 * ordinary reset; `mssh ssh`, `mssh proxy` and `mssh-tui` print the reason. Never reused.
 *
 *   relay: router.closeSessionsOfUser(user, 'user_disabled') -> tunnel stream RST_STREAM(0x4d530001)
 *   mssh:  stream.rstCode 0x4d530001 -> "your account was disabled by an admin" [CLI_ERR_ACCOUNT_DISABLED]
 */
export const TUNNEL_END_CODES = {
  /** An admin disabled the account with --kill-sessions. */
  user_disabled: 0x4d530001,
  /** An admin changed the user's role: what the session was allowed under no longer holds. */
  role_changed: 0x4d530002,
  /** The relay stopped (a drain's --drain-timeout passed, or a stop without a drain): connect again. */
  relay_shutdown: 0x4d530003,
  /** The machine's labels changed and no grant of the user matches it any more (issue 21). */
  grant_revoked: 0x4d530004,
} as const;

export type TunnelEndReason = keyof typeof TUNNEL_END_CODES;

/** The RST_STREAM code for a reason the relay ends sessions for, if it has one of its own. */
export function tunnelEndCode(reason: string): number | undefined {
  return (TUNNEL_END_CODES as Record<string, number>)[reason];
}

/** The reason behind a received RST_STREAM code, or null for any other code (or none). */
export function tunnelEndReason(code: number | undefined): TunnelEndReason | null {
  if (code === undefined) return null;
  for (const [reason, c] of Object.entries(TUNNEL_END_CODES)) if (c === code) return reason as TunnelEndReason;
  return null;
}

/**
 * Reset an HTTP/2 stream with `code` and nothing before it. Node's `stream.close(code)` first ends the
 * writable side, so END_STREAM can reach the peer ahead of the RST_STREAM; a peer that then ends its own
 * side (`mssh proxy` does) has a closed stream before the RST arrives and never sees the code (measured:
 * 1 in 20 streams on loopback). Submitting the RST on the stream's native handle first sends it alone;
 * close() then only tidies up. Falls back to close() when Node's internals are not as expected.
 */
export function resetStream(stream: { close(code?: number): void }, code: number): void {
  const sym = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle');
  const handle = sym
    ? (stream as unknown as Record<symbol, { rstStream?: (code: number) => unknown } | undefined>)[sym]
    : undefined;
  try {
    if (handle && typeof handle.rstStream === 'function') handle.rstStream(code);
  } catch {
    // close() below still resets it
  }
  stream.close(code);
}
