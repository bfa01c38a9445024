/**
 * ssh2 loaded on first use: importing it costs ~40-50 ms of CPU, which commands without an SSH session
 * (ls, login, proxy, known-hosts) should not pay, and which `mssh ssh` overlaps with its relay
 * connection by calling preloadSsh2() first.
 */
import type * as Ssh2 from 'ssh2';

type Ssh2Module = typeof Ssh2;
let loading: Promise<Ssh2Module> | undefined;

export function loadSsh2(): Promise<Ssh2Module> {
  loading ??= import('ssh2').then((m) => (m as unknown as { default?: Ssh2Module }).default ?? m);
  return loading;
}

/** Start loading ssh2 now, in the background; errors surface at the later loadSsh2(). */
export function preloadSsh2(): void {
  void loadSsh2().catch(() => undefined);
}
