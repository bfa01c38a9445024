/**
 * Why a listener could not bind, in words: every listener of the relay (HTTPS, SSH jump, fleet peers,
 * metrics) and the agent's metrics endpoint say it the same way.
 */
export function listenErrorReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE') return 'the address is already in use';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EADDRNOTAVAIL') return 'no such address on this machine';
  return e instanceof Error ? e.message : String(e);
}
