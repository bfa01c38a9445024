/**
 * HTTP/2 control-frame floods (issue 22, bad input): a peer that sends PING or SETTINGS frames faster than
 * any client needs. Both force an answer (PING ACK, SETTINGS ACK) and work on the relay's event loop.
 *
 *   peer sends PING/SETTINGS faster than it reads the ACKs
 *       --> nghttp2's own flood protection (more than 1000 ACKs queued): session error NGHTTP2_ERR_FLOODED
 *   peer sends them paced, reading every ACK (a loop with a few PINGs outstanding: thousands a second)
 *       --> this guard: more than `limit` in one second ends the connection (GOAWAY ENHANCE_YOUR_CALM)
 *
 * Either way only that connection ends; the relay logs one line for it (`RLY_ERR_H2_FLOOD`, rate-limited,
 * see floodLogger). Used on API connections (server-factory.ts) and agent links (tunnel/agent-link.ts).
 * A legitimate peer sends a PING every few seconds (keepalive, the picker's RTT) and a SETTINGS frame at
 * start and on rare changes; an HTTP/2 BDP estimator sends at most one PING per round trip while data
 * flows, well under the default of 1000 a second on any real link.
 */
import type { Http2Session } from 'node:http2';

/** Default for `--max-h2-control-frames` (0: off). */
export const DEFAULT_MAX_CONTROL_FRAMES_PER_SECOND = 1000;

/** nghttp2's NGHTTP2_ERR_FLOODED, the errno of Node's ERR_HTTP2_ERROR when its flood protection fired. */
const NGHTTP2_ERR_FLOODED = -904;

export type FloodKind = 'ping' | 'settings' | 'ack-flood';

export interface FloodReport {
  kind: FloodKind;
  /** Frames of that kind in the last second (0 for an ack-flood: nghttp2 does not say). */
  count: number;
  limit: number;
}

/** Whether a session error is nghttp2's flood protection (too many ACKs queued for a peer that does not read). */
export function isNghttp2Flood(err: unknown): boolean {
  return (err as { errno?: unknown } | null)?.errno === NGHTTP2_ERR_FLOODED;
}

/**
 * Count the peer's PING and SETTINGS frames on `session`; past `limit` in one second, call onFlood once
 * (which closes the connection: the callers know its raw socket). limit 0: nothing is counted.
 */
export function guardControlFrames(session: Http2Session, limit: number, onFlood: (r: FloodReport) => void): void {
  if (limit <= 0) return;
  let windowStart = performance.now();
  const counts = { ping: 0, settings: 0 };
  let tripped = false;
  const seen = (kind: 'ping' | 'settings'): void => {
    if (tripped) return;
    const now = performance.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      counts.ping = 0;
      counts.settings = 0;
    }
    if (++counts[kind] <= limit) return;
    tripped = true;
    onFlood({ kind, count: counts[kind], limit });
  };
  session.on('ping', () => seen('ping'));
  session.on('remoteSettings', () => seen('settings'));
}

/** The one log line of a flood, for both doors. */
export function floodMessage(r: FloodReport, peer: string, what: string): string {
  if (r.kind === 'ack-flood')
    return `HTTP/2 flood from ${peer}: PING/SETTINGS faster than it reads the answers (nghttp2 flood protection); ${what} closed [RLY_ERR_H2_FLOOD]`;
  return `HTTP/2 ${r.kind === 'ping' ? 'PING' : 'SETTINGS'} flood from ${peer}: more than ${r.limit} frames in one second (--max-h2-control-frames); ${what} closed with GOAWAY ENHANCE_YOUR_CALM [RLY_ERR_H2_FLOOD]`;
}

/**
 * A flood from many connections must not become a line per connection: the first line of a second is
 * written, the others counted and reported (`suppressed`) on the next line written.
 */
export function floodLogger(write: (fields: object, msg: string) => void): (fields: object, msg: string) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (fields, msg) => {
    const now = performance.now();
    if (now - last < 1000) {
      suppressed++;
      return;
    }
    last = now;
    write({ ...fields, code: 'RLY_ERR_H2_FLOOD', ...(suppressed ? { suppressed } : {}) }, msg);
    suppressed = 0;
  };
}
