/**
 * The progress line of a many-machine run on stderr, only when stderr is a terminal:
 *   mssh exec: 12/40 done, 32 running, 2 not ok
 * redrawn in place (at most 10 times a second), cleared before any other stderr output and at the end.
 */
import type { Writable } from 'node:stream';
import type { MachineResult } from './fan-out.js';

export interface RunProgress {
  started(host: string): void;
  finished(r: MachineResult): void;
  /** Remove the line (before other stderr output); the next event draws it again. */
  clear(): void;
  /** Remove the line for good. */
  done(): void;
}

export function createRunProgress(stderr: Writable, program: string, total: number): RunProgress {
  const tty = (stderr as Partial<NodeJS.WriteStream>).isTTY === true;
  const active = new Set<string>();
  let finished = 0;
  let notOk = 0;
  let shown = false;
  let over = false;
  let lastDraw = 0;
  let timer: NodeJS.Timeout | null = null;
  const draw = () => {
    timer = null;
    if (over) return;
    lastDraw = Date.now();
    const bad = notOk > 0 ? `, ${notOk} not ok` : '';
    stderr.write(`\r\x1b[K${program}: ${finished}/${total} done, ${active.size} running${bad}`);
    shown = true;
  };
  const schedule = () => {
    if (!tty || over || timer) return;
    const wait = Math.max(0, lastDraw + 100 - Date.now());
    timer = setTimeout(draw, wait);
    timer.unref();
  };
  const clear = () => {
    if (!shown) return;
    shown = false;
    stderr.write('\r\x1b[K');
  };
  return {
    started(host) {
      active.add(host);
      schedule();
    },
    finished(r) {
      active.delete(r.host);
      finished++;
      if (r.outcome !== 'ok') notOk++;
      schedule();
    },
    clear,
    done() {
      over = true;
      if (timer) clearTimeout(timer);
      clear();
    },
  };
}
