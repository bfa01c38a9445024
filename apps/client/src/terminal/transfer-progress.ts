/**
 * The progress bar of `mssh cp`: one line on stderr, redrawn in place at most 10 times a second, only
 * when stderr is a terminal (and not with -q); scripts and pipes see nothing.
 *
 *   notes.tar  [#########-----------]  45%  12.3 MiB / 27.0 MiB  8.1 MiB/s  ETA 0:02
 *
 * `finish()` replaces it with a summary line (`copied 3 files, 27.0 MiB in 3.2 s (8.4 MiB/s)`).
 */
import type { Writable } from 'node:stream';
import type { WriteStream } from 'node:tty';
import { formatBytes } from '../cp/copy-engine.js';

export interface TransferProgress {
  /** Bytes done so far, what is being copied now, and the total when it changed (a push learns it late). */
  update(done: number, label: string, total?: number): void;
  /** Erase the line; with a summary, print it on a line of its own. Safe to call more than once. */
  finish(summary?: string): void;
}

const MIN_REDRAW_MS = 100;
const BAR = 20;

export function formatDuration(secs: number): string {
  if (!Number.isFinite(secs) || secs < 0) return '--:--';
  const s = Math.round(secs);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The line for `done` of `total` bytes after `elapsedMs`, cut to `cols - 1` characters. */
export function progressLine(label: string, done: number, total: number, elapsedMs: number, cols: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(frac * BAR);
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const tail = `[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(Math.round(rate))}/s  ETA ${formatDuration(eta)}`;
  const room = Math.max(0, cols - 1 - tail.length - 2);
  const name = label.length > room ? (room > 1 ? `…${label.slice(label.length - room + 1)}` : '') : label;
  return `${name ? `${name}  ` : ''}${tail}`.slice(0, Math.max(10, cols - 1));
}

export function createTransferProgress(
  stderr: Writable,
  opts: { total: number; quiet: boolean; now?: () => number },
): TransferProgress {
  const tty = stderr as Partial<WriteStream>;
  const now = opts.now ?? Date.now;
  const started = now();
  if (opts.quiet || tty.isTTY !== true) return { update: () => {}, finish: () => {} };
  let last = -Infinity;
  let shown = false;
  let finished = false;
  let pending: { done: number; label: string } | null = null;
  let total = opts.total;
  let timer: NodeJS.Timeout | null = null;
  const draw = () => {
    timer = null;
    if (finished || !pending) return;
    last = now();
    stderr.write(`\r\x1b[K${progressLine(pending.label, pending.done, total, last - started, tty.columns ?? 80)}`);
    shown = true;
  };
  return {
    update(done, label, newTotal) {
      if (finished) return;
      if (newTotal !== undefined) total = newTotal;
      pending = { done, label };
      const wait = last + MIN_REDRAW_MS - now();
      if (wait <= 0) draw();
      else if (!timer) {
        timer = setTimeout(draw, wait);
        timer.unref();
      }
    },
    finish(summary) {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      if (shown) stderr.write('\r\x1b[K');
      if (summary) stderr.write(`${summary}\n`);
    },
  };
}
