/**
 * What `mssh ssh` shows while it connects (the wait can be long: relay, tunnel, the machine's sshd):
 *   -v:                     one line per step on stderr, `mssh: <step> (+<ms> ms)`, whatever stderr is;
 *   stderr is a terminal:   after 0.5 s, one status line (`⠋ laptop: opening the tunnel… 3 s`) redrawn in
 *                           place and erased when the SSH handshake is done (before any prompt) or on error;
 *   otherwise:              nothing (scripts and pipes see no control characters).
 */
import type { Writable } from 'node:stream';
import type { WriteStream } from 'node:tty';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface ConnectProgress {
  /** A step starts. */
  step(text: string): void;
  /** A verbose-only detail (nothing on the status line). */
  detail(text: string): void;
  /** Connected (or failed): erase the status line, stop the timer. Safe to call more than once. */
  done(): void;
}

export function createConnectProgress(
  stderr: Writable,
  opts: { verbose: boolean; host: string; now?: () => number; delayMs?: number },
): ConnectProgress {
  const now = opts.now ?? Date.now;
  const started = now();
  if (opts.verbose) {
    const line = (text: string) => stderr.write(`mssh: ${text} (+${now() - started} ms)\n`);
    return { step: line, detail: line, done: () => {} };
  }
  if ((stderr as Partial<WriteStream>).isTTY !== true) return { step: () => {}, detail: () => {}, done: () => {} };
  let current = 'connecting';
  let frame = 0;
  let shown = false;
  let finished = false;
  const draw = () => {
    const secs = Math.floor((now() - started) / 1000);
    const cols = (stderr as Partial<WriteStream>).columns ?? 80;
    const text = `${FRAMES[frame++ % FRAMES.length]} ${opts.host}: ${current}… ${secs} s`;
    stderr.write(`\r\x1b[K${text.slice(0, Math.max(10, cols - 1))}`);
    shown = true;
  };
  let timer: NodeJS.Timeout | null = null;
  const delay = setTimeout(() => {
    if (finished) return;
    draw();
    timer = setInterval(draw, 100);
    timer.unref();
  }, opts.delayMs ?? 500);
  delay.unref();
  return {
    step: (text) => {
      current = text;
    },
    detail: () => {},
    done: () => {
      if (finished) return;
      finished = true;
      clearTimeout(delay);
      if (timer) clearInterval(timer);
      if (shown) stderr.write('\r\x1b[K');
    },
  };
}
