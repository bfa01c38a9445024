/**
 * Frees the buffers of bulk transfers while they are young, so that moving bytes does not set off V8's
 * full (mark-compact) garbage collections.
 *
 * Every chunk a Node process moves is a new ArrayBuffer: each TLS record read, each HTTP/2 DATA frame
 * handed to JS, each copy Node's JSStreamSocket makes (the write-decoupled ends, decoupled-socket.ts),
 * each SSH packet ssh2 seals. They die within microseconds, but their memory comes back only at the next
 * young-generation GC (a scavenge), and scavenges are started by JS objects filling the young
 * generation, of which a transfer makes few. Meanwhile V8 counts the memory held by those dead buffers
 * since the last full GC against the old generation's limit, which on a small heap (~10 MB live) is
 * only ~9 MB away: so every few megabytes moved started a full GC (marking on helper threads, then a
 * compaction), 20-60 per 256 MiB in each of the client, the relay and the agent, a quarter to a third
 * of their CPU (bench/README.md, finding 16).
 *
 * So the data paths report what they move, and after every RECLAIM_EVERY bytes this process asks V8 for
 * a scavenge. A scavenge costs a fraction of a millisecond here (it copies only what is still alive,
 * and almost nothing is), and it returns the dead buffers before they add up to a full GC. V8 offers
 * that request only through its `gc` extension, which is switched on just long enough to fetch the
 * function from a context of its own and off again at once, so no other code gains a global `gc`.
 * If the extension cannot be had, nothing changes but the speed.
 *
 * Interactive sessions move far less than RECLAIM_EVERY between keystrokes: they are not affected.
 * `MSSH_BUFFER_RECLAIM=off` turns it off.
 *
 * A process-wide effect, so a program opts in: its main calls installBufferReclaim() once. Importing
 * this module (a library, a test) changes nothing, and until the install noteBytesMoved counts nothing.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bytes moved between two scavenges this process asks for. */
export const RECLAIM_EVERY = 2 * 1024 * 1024;

type MinorGc = (opts: { type: 'minor' }) => void;

/** null: not installed (or off, or no gc to be had); undefined: installed, the gc not fetched yet. */
let gcFn: MinorGc | null | undefined = null;
let installed = false;
let since = 0;
let scheduled = false;
let requested = 0;

function load(): MinorGc | null {
  // Started with --expose-gc already (a debugging session): use that one and leave the flag alone.
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as MinorGc;
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    return typeof fn === 'function' ? (fn as MinorGc) : null;
  } catch {
    return null;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}

function reclaim(): void {
  scheduled = false;
  since = 0;
  if (gcFn === undefined) gcFn = load();
  if (!gcFn) return;
  requested++;
  gcFn({ type: 'minor' });
}

/**
 * Switch buffer reclaim on for this process (a program's main, once; later calls do nothing). The gc
 * function is fetched at the first reclaim, so start-up costs nothing. Returns false when
 * MSSH_BUFFER_RECLAIM=off.
 */
export function installBufferReclaim(env: NodeJS.ProcessEnv = process.env): boolean {
  if (!installed) {
    installed = true;
    gcFn = env.MSSH_BUFFER_RECLAIM === 'off' ? null : undefined;
  }
  return gcFn !== null;
}

/**
 * Count `n` bytes moved by this process; past RECLAIM_EVERY a scavenge runs once the current I/O
 * callbacks are done (setImmediate), never inside a stream's own callback.
 */
export function noteBytesMoved(n: number): void {
  if (gcFn === null) return; // not installed, off, or no gc to be had: nothing to count for
  since += n;
  if (since < RECLAIM_EVERY || scheduled) return;
  scheduled = true;
  setImmediate(reclaim);
}

/** Scavenges requested so far (for tests and diagnostics). */
export function reclaimsRequested(): number {
  return requested;
}
