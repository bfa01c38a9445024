import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import type { Http2Session } from 'node:http2';
import { floodLogger, floodMessage, guardControlFrames, isNghttp2Flood, type FloodReport } from './h2-flood-guard.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A stand-in for an Http2Session: the guard only listens to its 'ping' and 'remoteSettings' events. */
function fakeSession(): EventEmitter & Http2Session {
  return new EventEmitter() as EventEmitter & Http2Session;
}

describe('guardControlFrames', () => {
  it('reports once, on the frame past the limit within one second, with its kind', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const s = fakeSession();
    const reports: FloodReport[] = [];
    guardControlFrames(s, 5, (r) => reports.push(r));
    for (let i = 0; i < 5; i++) s.emit('ping');
    expect(reports).toEqual([]);
    s.emit('ping');
    expect(reports).toEqual([{ kind: 'ping', count: 6, limit: 5 }]);
    for (let i = 0; i < 20; i++) s.emit('remoteSettings');
    expect(reports).toHaveLength(1);
  });

  it('counts PING and SETTINGS apart, and starts again each second', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const s = fakeSession();
    const reports: FloodReport[] = [];
    guardControlFrames(s, 5, (r) => reports.push(r));
    for (let i = 0; i < 5; i++) {
      s.emit('ping');
      s.emit('remoteSettings');
    }
    vi.advanceTimersByTime(1_000);
    for (let i = 0; i < 5; i++) s.emit('remoteSettings');
    expect(reports).toEqual([]);
    s.emit('remoteSettings');
    expect(reports).toEqual([{ kind: 'settings', count: 6, limit: 5 }]);
  });

  it('limit 0 counts nothing', () => {
    const s = fakeSession();
    guardControlFrames(s, 0, () => {
      throw new Error('must not be called');
    });
    expect(s.listenerCount('ping')).toBe(0);
    expect(s.listenerCount('remoteSettings')).toBe(0);
  });
});

describe('flood log', () => {
  it('writes the first line of a second with the code, counts the rest and reports them on the next line', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
    const log = floodLogger((fields, msg) => lines.push({ fields: fields as Record<string, unknown>, msg }));
    log({ peer: '192.0.2.1' }, 'one');
    log({ peer: '192.0.2.2' }, 'two');
    log({ peer: '192.0.2.3' }, 'three');
    vi.advanceTimersByTime(1_000);
    log({ peer: '192.0.2.4' }, 'four');
    expect(lines).toEqual([
      { fields: { peer: '192.0.2.1', code: 'RLY_ERR_H2_FLOOD' }, msg: 'one' },
      { fields: { peer: '192.0.2.4', code: 'RLY_ERR_H2_FLOOD', suppressed: 2 }, msg: 'four' },
    ]);
  });

  it('messages name the peer, the kind, the limit and the code', () => {
    expect(floodMessage({ kind: 'ping', count: 1001, limit: 1000 }, '192.0.2.9', 'connection')).toBe(
      'HTTP/2 PING flood from 192.0.2.9: more than 1000 frames in one second (--max-h2-control-frames); connection closed with GOAWAY ENHANCE_YOUR_CALM [RLY_ERR_H2_FLOOD]',
    );
    expect(floodMessage({ kind: 'ack-flood', count: 0, limit: 0 }, 'agent db1 at 192.0.2.9', 'agent link')).toMatch(
      /^HTTP\/2 flood from agent db1 at 192\.0\.2\.9: .*\(nghttp2 flood protection\); agent link closed \[RLY_ERR_H2_FLOOD\]$/,
    );
  });

  it("isNghttp2Flood: Node's ERR_HTTP2_ERROR with nghttp2's NGHTTP2_ERR_FLOODED only", () => {
    expect(isNghttp2Flood(Object.assign(new Error('Flooding was detected'), { errno: -904 }))).toBe(true);
    expect(isNghttp2Flood(Object.assign(new Error('Protocol error'), { errno: -505 }))).toBe(false);
    expect(isNghttp2Flood(new Error('x'))).toBe(false);
    expect(isNghttp2Flood(null)).toBe(false);
  });
});
