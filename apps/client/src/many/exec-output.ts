/**
 * Where `mssh exec` puts each machine's output. Three modes, all streamed (a machine's output is never
 * held whole; each sink passes backpressure back to its SSH channel):
 *
 *   prefixed (default)  channel ──LineSplitter──▶ `name: line` ──shared writer──▶ our stdout / stderr
 *   --json              channel ──Capture (first 1 MiB per stream, then only counted)──▶ one JSON line per machine
 *   --out-dir DIR       channel ──▶ DIR/NAME.out, DIR/NAME.err
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { jsonForTerminal } from '@mssh/protocol';
import { cliError } from '../errors.js';
import type { MachineResult } from './fan-out.js';

/** Captured output per machine and stream in --json mode; beyond it bytes are counted, not kept. */
export const JSON_CAPTURE_LIMIT = 1024 * 1024;
/** A line longer than this (no newline yet) is printed in pieces, each with the prefix. */
export const MAX_LINE_BYTES = 64 * 1024;

export interface MachineSinks {
  stdout: Writable;
  stderr: Writable;
  /** Flush what is left (a partial last line, file buffers); resolves when written. */
  close(): Promise<void>;
}

export interface ExecOutput {
  /** Sinks for one machine's remote stdout and stderr (called when its job starts). */
  open(host: string): MachineSinks;
  /** Every machine's result, started or not (JSON mode prints its line here). */
  result(r: MachineResult): void;
}

/**
 * One writer shared by every machine that writes to one stream: whole buffers only (so lines of two
 * machines never mix), callbacks held while the stream is full (one 'drain' listener for all), failed
 * with the stream's error once it broke (EPIPE: the reader went away).
 */
export class SharedWriter {
  private waiting: Array<(err?: Error | null) => void> = [];
  private broken: Error | null = null;
  private listening = false;

  constructor(
    readonly target: Writable,
    private readonly beforeWrite?: () => void,
  ) {
    target.on('error', (e: Error) => {
      this.broken ??= e;
      const w = this.waiting;
      this.waiting = [];
      for (const cb of w) cb(e);
    });
  }

  get isTTY(): boolean {
    return (this.target as Partial<NodeJS.WriteStream>).isTTY === true;
  }

  write(buf: Buffer | string, cb: (err?: Error | null) => void): void {
    if (this.broken) return cb(this.broken);
    this.beforeWrite?.();
    if (this.target.write(buf)) return cb();
    this.waiting.push(cb);
    if (this.listening) return;
    this.listening = true;
    this.target.once('drain', () => {
      this.listening = false;
      const w = this.waiting;
      this.waiting = [];
      for (const f of w) f();
    });
  }
}

/** Splits a byte stream into lines and writes each as `prefix + line + "\n"`; keeps a partial last line. */
export class LineSplitter extends Writable {
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(
    private readonly prefix: string,
    private readonly out: SharedWriter,
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const pieces: Buffer[] = [];
    const prefix = Buffer.from(this.prefix);
    const nl = Buffer.from('\n');
    let start = 0;
    for (;;) {
      const i = chunk.indexOf(0x0a, start);
      if (i < 0) break;
      pieces.push(prefix, ...this.partial, chunk.subarray(start, i), nl);
      this.partial = [];
      this.partialBytes = 0;
      start = i + 1;
    }
    if (start < chunk.length) {
      this.partial.push(chunk.subarray(start));
      this.partialBytes += chunk.length - start;
      if (this.partialBytes >= MAX_LINE_BYTES) {
        pieces.push(prefix, ...this.partial, nl);
        this.partial = [];
        this.partialBytes = 0;
      }
    }
    if (pieces.length === 0) return cb();
    this.out.write(Buffer.concat(pieces), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.partialBytes === 0) return cb();
    const last = Buffer.concat([Buffer.from(this.prefix), ...this.partial, Buffer.from('\n')]);
    this.partial = [];
    this.partialBytes = 0;
    this.out.write(last, cb);
  }
}

/** Keeps the first `limit` bytes, counts the rest. */
export class Capture extends Writable {
  private chunks: Buffer[] = [];
  kept = 0;
  total = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.total += chunk.length;
    const room = this.limit - this.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(Buffer.from(part));
      this.kept += part.length;
    }
    cb();
  }

  get truncated(): boolean {
    return this.total > this.kept;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function endAndWait(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (w.writableFinished || w.destroyed) return resolve();
    w.once('error', () => resolve());
    w.end(() => resolve());
  });
}

const COLOURS = [36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91];

/** `name: line` on our stdout/stderr, names padded to the longest, a colour per machine on a terminal. */
export function prefixedOutput(
  stdout: Writable,
  stderr: Writable,
  names: readonly string[],
  opts: { beforeStderrWrite?: () => void } = {},
): ExecOutput {
  const out = new SharedWriter(stdout);
  const err = new SharedWriter(stderr, opts.beforeStderrWrite);
  const width = Math.max(0, ...names.map((n) => n.length));
  const index = new Map(names.map((n, i) => [n, i]));
  const prefix = (host: string, tty: boolean) => {
    const label = `${host}:`.padEnd(width + 1);
    if (!tty) return `${label} `;
    const c = COLOURS[(index.get(host) ?? 0) % COLOURS.length];
    return `\x1b[${c}m${label}\x1b[0m `;
  };
  return {
    open(host) {
      const o = new LineSplitter(prefix(host, out.isTTY), out);
      const e = new LineSplitter(prefix(host, err.isTTY), err);
      return {
        stdout: o,
        stderr: e,
        close: async () => {
          await Promise.all([endAndWait(o), endAndWait(e)]);
        },
      };
    },
    result() {},
  };
}

/** The object `--json` prints per machine (one line each; field names are documented, keep them stable). */
export interface ExecJsonLine {
  name: string;
  result: MachineResult['outcome'];
  exit_code: number | null;
  signal: string | null;
  duration_ms: number;
  stdout: string;
  stderr: string;
  stdout_bytes: number;
  stderr_bytes: number;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error: { code: string; message: string } | null;
}

/** One JSON object per machine per line on stdout, written when the machine is done. */
export function jsonOutput(stdout: Writable, limit = JSON_CAPTURE_LIMIT): ExecOutput {
  const captures = new Map<string, { o: Capture; e: Capture }>();
  return {
    open(host) {
      const c = { o: new Capture(limit), e: new Capture(limit) };
      captures.set(host, c);
      return {
        stdout: c.o,
        stderr: c.e,
        close: async () => {
          await Promise.all([endAndWait(c.o), endAndWait(c.e)]);
        },
      };
    },
    result(r) {
      const c = captures.get(r.host);
      captures.delete(r.host);
      const line: ExecJsonLine = {
        name: r.host,
        result: r.outcome,
        exit_code: r.exitCode,
        signal: r.signal,
        duration_ms: r.durationMs,
        stdout: c?.o.text() ?? '',
        stderr: c?.e.text() ?? '',
        stdout_bytes: c?.o.total ?? 0,
        stderr_bytes: c?.e.total ?? 0,
        stdout_truncated: c?.o.truncated ?? false,
        stderr_truncated: c?.e.truncated ?? false,
        error: r.error ? { code: r.error.code, message: r.error.message } : null,
      };
      stdout.write(`${jsonForTerminal(line)}\n`);
    },
  };
}

/** DIR/NAME.out and DIR/NAME.err per machine (DIR is created; files are replaced). */
export function outDirOutput(dir: string): ExecOutput {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw cliError(
      'CLI_ERR_USAGE',
      `cannot create the --out-dir ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      'Give a directory you may write to.',
      e,
    );
  }
  return {
    open(host) {
      const o = createWriteStream(join(dir, `${host}.out`));
      const e = createWriteStream(join(dir, `${host}.err`));
      const closed = (w: ReturnType<typeof createWriteStream>) =>
        new Promise<void>((resolve) => {
          if (w.closed) return resolve();
          w.once('close', () => resolve());
          w.once('error', () => resolve());
          w.end();
        });
      return { stdout: o, stderr: e, close: async () => void (await Promise.all([closed(o), closed(e)])) };
    },
    result() {},
  };
}
