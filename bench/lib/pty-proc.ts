/**
 * A client process in a pseudo-terminal (node-pty), as a user runs it in a terminal window: its output
 * kept raw (to time text arriving) and drawn on a headless xterm (to read a full-screen program's screen).
 */
import pty from 'node-pty';
import xterm from '@xterm/headless';
import { visibleScreen } from '@mssh/test-fixtures/terminal';
import type { Command } from './paths.js';
import { trackPty } from './procs.js';

export class PtyProc {
  readonly proc: pty.IPty;
  readonly term: InstanceType<typeof xterm.Terminal>;
  /** Everything the program wrote, raw. */
  raw = '';
  exitCode: number | null = null;
  private exited = false;
  private waiters: (() => void)[] = [];

  constructor(c: Command, cols = 100, rows = 30) {
    this.term = new xterm.Terminal({ cols, rows, allowProposedApi: true, scrollback: 100 });
    const env = { ...c.env, TERM: 'xterm-256color', LANG: 'C.UTF-8' } as Record<string, string>;
    this.proc = trackPty(pty.spawn(c.cmd, c.args, { name: 'xterm-256color', cols, rows, cwd: process.cwd(), env }));
    this.proc.onData((d) => {
      this.raw += d;
      this.term.write(d);
      this.wake();
    });
    this.proc.onExit(({ exitCode }) => {
      this.exited = true;
      this.exitCode = exitCode;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** What the xterm shows now (its writes are parsed asynchronously: a moment behind `raw`). */
  screen(): string {
    return visibleScreen(this.term);
  }

  /**
   * Resolve with the time (process.hrtime.bigint()) of the output event at which `test` first held, or
   * reject when the program exits first or after timeoutMs. `test` is checked at every output event and,
   * for the xterm screen (parsed a moment later), every 20 ms.
   */
  async until(test: () => boolean, timeoutMs: number, what: string): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 1_000_000; i++) {
      if (test()) return process.hrtime.bigint();
      if (this.exited) throw new Error(`${what}: the program exited (${this.exitCode}) ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: timed out after ${timeoutMs} ms ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 20));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    throw new Error(`${what}: too many wake-ups`);
  }

  /** Wait for the program to exit, at most timeoutMs; then SIGKILL it and reject. */
  async exit(timeoutMs: number): Promise<number | null> {
    try {
      await this.until(() => this.exited, timeoutMs, 'exit');
    } catch (e) {
      if (!this.exited) this.kill();
      if (!this.exited) throw e;
    }
    return this.exitCode;
  }

  type(s: string): void {
    this.proc.write(s);
  }

  kill(): void {
    if (!this.exited) {
      try {
        this.proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  describe(): string {
    const tail = this.raw
      .slice(-300)
      // eslint-disable-next-line no-control-regex -- ANSI sequences are stripped from the tail
      .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      .replace(/[^\x20-\x7e\n]/g, '.');
    return `[output: ${tail.trim()}]`;
  }
}
