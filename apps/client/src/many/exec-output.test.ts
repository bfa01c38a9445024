import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Capture, jsonOutput, LineSplitter, MAX_LINE_BYTES, prefixedOutput, SharedWriter } from './exec-output.js';

/** A writable that keeps what it got; `full` makes write() answer false until drained by hand. */
class Sink extends Writable {
  text = '';
  writes = 0;
  private held: Array<() => void> = [];
  constructor(private readonly hold = false) {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    this.writes++;
    if (this.hold) this.held.push(cb);
    else cb();
  }
  release(): void {
    const h = this.held;
    this.held = [];
    for (const cb of h) cb();
  }
}

const write = (w: Writable, s: string) => new Promise<void>((resolve) => w.write(Buffer.from(s), () => resolve()));
const end = (w: Writable) => new Promise<void>((resolve) => w.end(() => resolve()));

describe('mssh exec output', () => {
  it('prefixes whole lines, keeps a partial line until its end, and ends an unfinished last line', async () => {
    const out = new Sink();
    const s = new LineSplitter('web-1: ', new SharedWriter(out));
    await write(s, 'one\ntw');
    expect(out.text).toBe('web-1: one\n');
    await write(s, 'o\nthree\nfo');
    expect(out.text).toBe('web-1: one\nweb-1: two\nweb-1: three\n');
    await end(s);
    expect(out.text).toBe('web-1: one\nweb-1: two\nweb-1: three\nweb-1: fo\n');
  });

  it('a line longer than MAX_LINE_BYTES is printed in prefixed pieces, nothing held beyond it', async () => {
    const out = new Sink();
    const s = new LineSplitter('h: ', new SharedWriter(out));
    await write(s, 'x'.repeat(MAX_LINE_BYTES + 10));
    expect(out.text).toBe(`h: ${'x'.repeat(MAX_LINE_BYTES + 10)}\n`);
    await write(s, 'y\n');
    await end(s);
    expect(out.text.split('\n')).toEqual([`h: ${'x'.repeat(MAX_LINE_BYTES + 10)}`, 'h: y', '']);
  });

  it('names are padded to align; no colour unless the stream is a terminal', async () => {
    const out = new Sink();
    const err = new Sink();
    const o = prefixedOutput(out, err, ['a', 'web-10']);
    const m = o.open('a');
    await write(m.stdout, 'x\n');
    await write(m.stderr, 'e\n');
    await m.close();
    expect(out.text).toBe('a:      x\n');
    expect(err.text).toBe('a:      e\n');
    const tty = Object.assign(new Sink(), { isTTY: true });
    const coloured = prefixedOutput(tty, new Sink(), ['a', 'b']).open('b');
    await write(coloured.stdout, 'y\n');
    await coloured.close();
    expect(tty.text).toBe('\x1b[33mb:\x1b[0m y\n');
  });

  it('a full stream holds every writer back (backpressure) until it drains', async () => {
    const out = new Sink(true);
    const shared = new SharedWriter(out);
    let done = 0;
    for (let i = 0; i < 5; i++) shared.write(`line ${i}\n`, () => done++);
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(0);
    for (let i = 0; i < 20 && done < 5; i++) {
      out.release();
      await new Promise((r) => setImmediate(r));
    }
    expect(done).toBe(5);
    expect(out.text).toBe('line 0\nline 1\nline 2\nline 3\nline 4\n');
  });

  it('--json keeps the first `limit` bytes per stream, counts the rest and says truncated', async () => {
    const c = new Capture(10);
    await write(c, '0123456');
    await write(c, '789abc');
    expect([c.text(), c.total, c.truncated]).toEqual(['0123456789', 13, true]);

    const out = new Sink();
    const j = jsonOutput(out, 4);
    const m = j.open('db-1');
    await write(m.stdout, 'abcdef');
    await m.close();
    j.result({ host: 'db-1', outcome: 'failed', exitCode: 2, signal: null, error: null, durationMs: 7 });
    j.result({
      host: 'db-2',
      outcome: 'unreachable',
      exitCode: null,
      signal: null,
      error: { code: 'CLI_ERR_HOST_OFFLINE', message: 'db-2 is offline' },
      durationMs: 0,
    });
    const lines = out.text.trim().split('\n');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      {
        name: 'db-1',
        result: 'failed',
        exit_code: 2,
        signal: null,
        duration_ms: 7,
        stdout: 'abcd',
        stderr: '',
        stdout_bytes: 6,
        stderr_bytes: 0,
        stdout_truncated: true,
        stderr_truncated: false,
        error: null,
      },
      {
        name: 'db-2',
        result: 'unreachable',
        exit_code: null,
        signal: null,
        duration_ms: 0,
        stdout: '',
        stderr: '',
        stdout_bytes: 0,
        stderr_bytes: 0,
        stdout_truncated: false,
        stderr_truncated: false,
        error: { code: 'CLI_ERR_HOST_OFFLINE', message: 'db-2 is offline' },
      },
    ]);
  });
});
