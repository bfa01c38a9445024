/**
 * Work around an ssh2 1.17 server-side flow-control bug that mixes stdout and stderr of one channel.
 *
 * When the peer's window is exhausted, ssh2 parks the unsent rest of a stdout write in `channel._chunk`
 * (stderr: `channel._chunkErr`) and resumes it on the next CHANNEL_WINDOW_ADJUST. Two faults follow:
 *  1. `_chunk`/`_chunkcb` are never cleared once the parked write completes. A later stderr write that
 *     hits a full window makes the next window adjust re-send the STALE stdout chunk (duplicate bytes in
 *     the client's stdout, and a second call of an old write callback) instead of the stderr one.
 *  2. With both a stdout and a stderr write parked, a window adjust resumes only stdout; stderr stays
 *     parked until some later write blocks again, which may never happen: the session hangs.
 * Seen as `cat 50MiB; echo x >&2` never finishing through the embedded sshd (CI, 2026-11-26).
 *
 * The fix, per channel: clear the parked slot before each write (so nothing stale survives), and after a
 * write that left window over, resume the other stream's parked write. Uses ssh2 internals on purpose:
 * the test "exec of a command producing 50 MiB ... stderr separate" and the interleaved stdout/stderr
 * test fail without it.
 */
import type { ServerChannel } from 'ssh2';

type WriteFn = (data: Buffer, encoding: BufferEncoding | null, cb: (e?: Error | null) => void) => void;

interface ChannelInternals {
  _write: WriteFn;
  _chunk?: Buffer;
  _chunkcb?: (e?: Error | null) => void;
  _chunkErr?: Buffer;
  _chunkcbErr?: (e?: Error | null) => void;
  _waitWindow: boolean;
  outgoing: { window: number; state: string };
  stderr: { _write: WriteFn };
}

const PATCHED = Symbol('mssh.stderrWindowPatched');

export function guardStderrWindow(channel: ServerChannel): void {
  const ch = channel as unknown as ChannelInternals & { [PATCHED]?: boolean };
  if (ch[PATCHED] || typeof ch._write !== 'function' || !ch.stderr || typeof ch.stderr._write !== 'function') return;
  ch[PATCHED] = true;
  const outWrite = ch._write;
  const errWrite = ch.stderr._write;

  const resumeErr = (): void => {
    if (ch._waitWindow || ch.outgoing.window <= 0 || ch.outgoing.state !== 'open') return;
    const data = ch._chunkErr;
    const cb = ch._chunkcbErr;
    if (data && cb) patchedErr(data, null, cb);
  };
  const resumeOut = (): void => {
    if (ch._waitWindow || ch.outgoing.window <= 0 || ch.outgoing.state !== 'open') return;
    const data = ch._chunk;
    const cb = ch._chunkcb;
    if (data && cb) patchedOut(data, null, cb);
  };

  function patchedOut(data: Buffer, encoding: BufferEncoding | null, cb: (e?: Error | null) => void): void {
    ch._chunk = undefined;
    ch._chunkcb = undefined;
    outWrite.call(ch, data, encoding, cb);
    resumeErr();
  }
  function patchedErr(data: Buffer, encoding: BufferEncoding | null, cb: (e?: Error | null) => void): void {
    ch._chunkErr = undefined;
    ch._chunkcbErr = undefined;
    errWrite.call(ch.stderr, data, encoding, cb);
    resumeOut();
  }
  ch._write = patchedOut;
  ch.stderr._write = patchedErr;
}
