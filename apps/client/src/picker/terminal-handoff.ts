/**
 * Handing the whole terminal from blessed to an SSH shell and back (shared DESIGN.md recipe). While the
 * shell runs, nothing of the picker may draw or read keys:
 *   take():  capture the real stdout.write (program.pause() turns it into a no-op), leave the alternate
 *            screen, pause, silence blessed's own writer, detach blessed's stdin 'data'/'keypress' and
 *            stdout 'resize' listeners, give stdout its real write back. runSsh then sets raw mode, pipes
 *            stdin to the channel and forwards 'resize' to the remote PTY (channel.setWindow).
 *   give():  put the listeners back, resume (raw mode, input), enter the alternate screen with the cursor
 *            where the shell left it (so after quitting, the shell prompt comes below the session's
 *            last output, not over it), redraw.
 */
import type { Widgets } from 'blessed';

type Listener = (...args: unknown[]) => void;

export class TerminalHandoff {
  private saved: {
    data: Listener[];
    keypress: Listener[];
    resize: Listener[];
    owrite: unknown;
    write: unknown;
  } | null = null;

  constructor(private readonly screen: Widgets.Screen) {}

  get active(): boolean {
    return this.saved !== null;
  }

  take(): void {
    if (this.saved) return;
    const program = this.screen.program as unknown as { pause(): void; _owrite: unknown; flush(): void };
    // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to be put back, and called with .call(process.stdout)
    const realWrite = process.stdout.write;
    (this.screen as unknown as { leave(): void }).leave();
    program.flush();
    program.pause();
    const saved = {
      data: process.stdin.listeners('data') as Listener[],
      keypress: process.stdin.listeners('keypress') as Listener[],
      resize: process.stdout.listeners('resize') as Listener[],
      owrite: program._owrite,
      // eslint-disable-next-line @typescript-eslint/unbound-method -- saved to be put back as it was (give())
      write: process.stdout.write,
    };
    for (const l of saved.data) process.stdin.removeListener('data', l);
    for (const l of saved.keypress) process.stdin.removeListener('keypress', l);
    for (const l of saved.resize) process.stdout.removeListener('resize', l);
    program._owrite = () => true;
    process.stdout.write = realWrite;
    // Clear the main screen so the shell starts on a clean page.
    realWrite.call(process.stdout, '\x1b[H\x1b[2J');
    this.saved = saved;
  }

  give(): void {
    const saved = this.saved;
    if (!saved) return;
    this.saved = null;
    const program = this.screen.program as unknown as {
      resume(): void;
      _owrite: unknown;
      _write(text: string): unknown;
    };
    process.stdin.removeAllListeners('data');
    process.stdin.removeAllListeners('keypress');
    for (const l of saved.data) process.stdin.on('data', l);
    for (const l of saved.keypress) process.stdin.on('keypress', l);
    for (const l of saved.resize) process.stdout.on('resize', l);
    process.stdout.write = saved.write as typeof process.stdout.write;
    program._owrite = saved.owrite;
    // resume() moves the cursor to where blessed last had it (the top left) before enter() saves it with
    // the main screen: quitting later would put the shell prompt over the session's last lines. Keep the
    // cursor where the session left it (DECSC ... DECRC), so the main screen reads like after `ssh`.
    program._write('\x1b7');
    program.resume();
    program._write('\x1b8');
    (this.screen as unknown as { enter(): void }).enter();
    // The window may have changed size while the shell ran.
    const p = this.screen.program as unknown as { cols: number; rows: number; emit(e: string): void };
    if (process.stdout.columns && process.stdout.rows) {
      p.cols = process.stdout.columns;
      p.rows = process.stdout.rows;
    }
    p.emit('resize');
    this.screen.render();
  }
}
