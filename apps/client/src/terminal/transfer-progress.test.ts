import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { createTransferProgress, formatDuration, progressLine } from './transfer-progress.js';

const MiB = 1024 * 1024;

describe('transfer progress', () => {
  it('shows name, bar, percent, bytes, rate and ETA on one line that fits the terminal', () => {
    const line = progressLine('big.bin', 4 * MiB, 8 * MiB, 2_000, 120);
    expect(line).toBe('big.bin  [##########----------]  50%  4.0 MiB / 8.0 MiB  2.0 MiB/s  ETA 0:02');
    expect(progressLine('a/very/long/path/name.bin', MiB, 8 * MiB, 1_000, 70).length).toBeLessThanOrEqual(69);
    expect(formatDuration(3_725)).toBe('1:02:05');
    expect(formatDuration(Infinity)).toBe('--:--');
  });

  it('draws only on a terminal, not with -q, and at most every 100 ms', () => {
    let t = 0;
    const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 100 });
    let written = '';
    tty.on('data', (d: Buffer) => (written += d.toString()));
    const p = createTransferProgress(tty, { total: 100, quiet: false, now: () => t });
    p.update(10, 'f');
    t = 50;
    p.update(20, 'f'); // too soon: deferred
    expect(written.split('\r\x1b[K').length - 1).toBe(1);
    p.finish('copied 1 file');
    expect(written.endsWith('\r\x1b[Kcopied 1 file\n')).toBe(true);

    for (const [stream, quiet] of [
      [Object.assign(new PassThrough(), { isTTY: false }), false],
      [Object.assign(new PassThrough(), { isTTY: true }), true],
    ] as const) {
      let out = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      const q = createTransferProgress(stream, { total: 100, quiet });
      q.update(50, 'f');
      q.finish('summary');
      expect(out).toBe('');
    }
  });
});
