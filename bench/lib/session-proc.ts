/**
 * A client process (ssh or mssh) driven through its stdin/stdout pipes, with bounded waits.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnTracked, exited } from './procs.js';
import type { Command } from './paths.js';

export class SessionProc {
  readonly child: ChildProcess;
  out: Buffer = Buffer.alloc(0);
  err = '';
  readonly exit: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(c: Command) {
    this.child = spawnTracked(c.cmd, c.args, { env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', () => {});
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out = this.out.length ? Buffer.concat([this.out, d]) : d;
      this.wake();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      if (this.err.length < 16_000) this.err += d.toString();
    });
    this.exit = exited(this.child);
    void this.exit.then(() => this.wake());
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolve when pred(stdout so far) holds; reject on exit or after timeoutMs. */
  async waitOut(pred: (out: Buffer) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000_000; i++) {
      if (pred(this.out)) return;
      if (!this.running)
        throw new Error(`${what}: process exited (${this.child.exitCode ?? this.child.signalCode}) ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: timed out after ${timeoutMs} ms ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    throw new Error(`${what}: too many wake-ups`);
  }

  describe(): string {
    const o = this.out
      .toString('latin1')
      .slice(-200)
      .replace(/[^\x20-\x7e]/g, '.');
    return `[stdout: ${o}] [stderr: ${this.err.trim().slice(-400)}]`;
  }

  /** Write with backpressure. */
  async write(chunk: Buffer): Promise<void> {
    if (!this.child.stdin!.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          cleanup();
          resolve();
        };
        const onExit = () => {
          cleanup();
          reject(new Error(`process exited while writing ${this.describe()}`));
        };
        const cleanup = () => {
          this.child.stdin!.off('drain', onDrain);
          this.child.off('exit', onExit);
        };
        this.child.stdin!.once('drain', onDrain);
        this.child.once('exit', onExit);
      });
    }
  }

  /** Wait for exit at most timeoutMs, then SIGKILL. */
  async finish(timeoutMs: number): Promise<number | null> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exit;
    clearTimeout(t);
    return code;
  }

  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM');
      await this.finish(3_000);
    }
  }
}
