/**
 * One retry on a new connection (issue 19, upgrade without downtime). Relays restart one by one behind one
 * address (a TCP load balancer); a draining or vanishing relay refuses what it has not started:
 *
 *   connect   ECONNREFUSED, ECONNRESET, closed during the TLS handshake     -> connect once more
 *   request   HTTP/2 GOAWAY / REFUSED_STREAM (the relay did not take it),
 *             503 RLY_ERR_DRAINING (a tunnel: no new sessions on this relay) -> once more on a NEW connection,
 *             connection lost before any answer byte: GETs and tunnel opens    which the balancer sends to
 *             only (a POST may have been carried out)                          another relay
 *
 * After a 503 RLY_ERR_DRAINING the retry waits 1 s first (RelayClientOptions.drainingRetryPauseMs): the
 * balancer's next health check takes the draining relay out of its rotation meanwhile.
 * A request is retried at most once, within its own time limit (the command's deadline); nothing is retried
 * once an answer has begun (a tunnel's first byte comes after its 200). The retry is told at debug level
 * only (MSSH_DEBUG=1, `mssh ssh -v`); if the second attempt fails too, its error is the one reported.
 */
import http2 from 'node:http2';

const retryable = new WeakMap<object, string>();

/** Mark an error as one a retry on a new connection may overcome; `why` is what the debug line says. */
export function markRetryable<E extends object>(e: E, why: string): E {
  retryable.set(e, why);
  return e;
}

/** Why a retry may help, or null when it would not (or the error was not marked). */
export function retryReason(e: unknown): string | null {
  return typeof e === 'object' && e !== null ? (retryable.get(e) ?? null) : null;
}

/** Socket errors of a connection attempt that a new attempt may not meet (another relay behind the address). */
export const RETRYABLE_CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET']);

const { NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * Why a request stream that ended before any answer may be retried, or null. `sure`: the relay certainly
 * did not process it (refused stream); otherwise only requests that are safe to repeat are retried.
 */
export function unansweredReason(
  stream: { rstCode?: number },
  err: NodeJS.ErrnoException | null,
  safeToRepeat: boolean,
): string | null {
  if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return 'the relay refused the request (GOAWAY: it is draining)';
  if (!safeToRepeat) return null;
  const code = err?.code;
  return `the connection ended before an answer (${code ?? (stream.rstCode !== undefined ? `HTTP/2 code ${stream.rstCode}` : 'closed')})`;
}

/** Resolve with p, or reject with `err` after ms. */
export function within<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), Math.max(0, ms));
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
