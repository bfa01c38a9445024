/**
 * Issue 16 item 3 through the real relay, agent and sshd: while one address opens 5 HTTP/2 connections
 * with 10,000 unauthenticated streams each (POST /v1/auth/login, content-length 100, no body), a running
 * shell session keeps answering keystrokes, /healthz answers, the relay's memory stays bounded and comes
 * back, the log does not grow a line per request, and the flood is refused with HTTP/2 codes.
 *
 * The bounds here are generous (a loaded 2-core CI runs this); the measured figures are printed as one
 * JSON line (`flood-figures`) for the record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import http2 from 'node:http2';
import type ssh2 from 'ssh2';
import { PATHS } from '@mssh/protocol';
import { fixtures } from './fixtures/inject.js';
import { startRelay, startAgent, stopAll, type Relay } from './fixtures/stack.js';
import { adminSession, openTunnel, sshExec, readKey } from './fixtures/tunnel-client.js';
import { h2From, rawRequest, rssOf } from './fixtures/h2-raw.js';

afterAll(stopAll);

const MB = 1024 * 1024;
const FLOOD = join(import.meta.dirname, 'fixtures/stream-flood.mjs');

interface FloodResult {
  opened: number;
  settled: number;
  elapsedMs: number;
  status: Record<string, number>;
  rst: Record<string, number>;
  goaway: Record<string, number>;
  sessionErrors: Record<string, number>;
  streamErrors: Record<string, number>;
  connectErrors: Record<string, number>;
}

/** CPU time (user + system) a process has used, in seconds (from /proc; 100 ticks per second). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
}

/** A `cat` over SSH through the relay: one byte out, the same byte back = one keystroke's round trip. */
class Shell {
  private waiting: ((d: Buffer) => void) | null = null;
  constructor(
    readonly client: ssh2.Client,
    readonly channel: ssh2.ClientChannel,
  ) {
    channel.on('data', (d: Buffer) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(d);
    });
  }
  async keystroke(timeoutMs = 15_000): Promise<number> {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`no echo within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = () => {
        clearTimeout(timer);
        resolve();
      };
      this.channel.write('x');
    });
    return performance.now() - t0;
  }
}

const BODY_TIMEOUT_S = 2;

describe('a flood of unauthenticated HTTP/2 streams', () => {
  let relay: Relay;
  let h2: http2.ClientHttp2Session;
  let shell: Shell;

  beforeAll(async () => {
    // A 2 s body deadline, so that the streams the relay keeps are timed out (408) while the flood runs.
    relay = await startRelay('pglite', ['--body-timeout', String(BODY_TIMEOUT_S)]);
    await startAgent(relay, 'laptop');
    let token: string;
    ({ h2, token } = await adminSession(relay));
    const f = fixtures();
    const sock = await openTunnel(h2, token, 'laptop');
    const { client, channel } = await sshExec(sock, {
      user: f.sshd.user,
      privateKey: readKey(f.sshd.clientKey),
      command: 'cat',
    });
    shell = new Shell(client, channel);
  });
  afterAll(async () => {
    shell?.client.end();
    h2?.close();
    await relay?.proc.stop();
  });

  it('5 x 10,000 streams from one address: refused with codes; the shell answers, memory stays bounded and returns', async () => {
    const pid = relay.proc.child.pid!;
    const rss = () => rssOf(pid, readFileSync);
    for (let i = 0; i < 30; i++) await shell.keystroke();
    const quiet: number[] = [];
    for (let i = 0; i < 50; i++) quiet.push(await shell.keystroke());
    const rssBefore = rss();
    const logBefore = relay.proc.err.split('\n').length;

    // The flood ends when 40,000 of its streams have ended (or after 150 s): the connection whose 128
    // unanswered streams the relay keeps gets them timed out (408) after 2 s here and is then closed (32
    // timeouts count as refusals); the others are refused within seconds.
    const cpuBefore = cpuSeconds(pid);
    const flood = spawn(process.execPath, [FLOOD, String(relay.port), '5', '10000', '127.0.0.2', '150000', '40000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The attacker's CPU is not the relay host's in real life: here it shares two cores, so it runs at
    // the lowest priority and what is measured is the relay's work, not the flood generator's.
    try {
      setPriority(flood.pid!, 19);
    } catch {
      /* not permitted: measure anyway */
    }
    let floodOut = '';
    let floodErr = '';
    flood.stdout.on('data', (d: Buffer) => (floodOut += d.toString()));
    flood.stderr.on('data', (d: Buffer) => (floodErr += d.toString()));
    const floodDone = new Promise<number | null>((res) => flood.once('exit', (code) => res(code)));
    let running = true;
    void floodDone.then(() => (running = false));
    const killer = setTimeout(() => flood.kill('SIGKILL'), 170_000);

    let peak = rssBefore;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rss());
      } catch {
        /* exited */
      }
    }, 100);
    // /healthz from another address during the flood.
    const probe = await h2From(relay, '127.0.0.1');
    const healthz: number[] = [];
    const healthLoop = (async () => {
      for (let i = 0; i < 2_000 && running; i++) {
        const t0 = performance.now();
        const r = await rawRequest(probe, { ':method': 'GET', ':path': PATHS.healthz }, undefined, 30_000);
        expect(r.status).toBe(200);
        healthz.push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    // Keystrokes every 20 ms while the flood runs (and at least 2 s of them).
    const during: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 20_000 && (running || Date.now() - t0 < 2_000) && Date.now() - t0 < 180_000; i++) {
      during.push(await shell.keystroke());
      await new Promise((res) => setTimeout(res, 20));
    }
    const code = await floodDone;
    clearTimeout(killer);
    await healthLoop;
    probe.close();
    clearInterval(sampler);
    const rssAfterFlood = rss();
    const relayCpu = cpuSeconds(pid) - cpuBefore;
    const last = floodOut.trim().split('\n').pop();
    const result = (last ? JSON.parse(last) : null) as FloodResult;
    const newLog = relay.proc.err.split('\n').slice(logBefore - 1);
    const logLines = newLog.length - 1;

    // Memory comes back (or never went): within a minute RSS is within 50 MB of where it started.
    let rssSettled = rss();
    for (let i = 0; i < 60 && rssSettled > rssBefore + 50 * MB; i++) {
      await new Promise((res) => setTimeout(res, 1_000));
      rssSettled = rss();
    }
    const figures = {
      flood: result,
      keystrokeMs: {
        quietP50: pct(quiet, 50),
        quietP99: pct(quiet, 99),
        p50: pct(during, 50),
        p99: pct(during, 99),
        max: Math.max(...during),
        n: during.length,
      },
      healthzMs: { p50: pct(healthz, 50), p99: pct(healthz, 99), max: Math.max(...healthz), n: healthz.length },
      rssMB: {
        before: +(rssBefore / MB).toFixed(1),
        peak: +(peak / MB).toFixed(1),
        afterFlood: +(rssAfterFlood / MB).toFixed(1),
        settled: +(rssSettled / MB).toFixed(1),
      },
      relayLogLines: logLines,
      relayLog: newLog.filter((l) => l.includes('per-address limits')).map((l) => JSON.parse(l).msg as string),
      relayCpuSeconds: +relayCpu.toFixed(2),
      loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
    console.log(`flood-figures ${JSON.stringify(figures)}`);
    expect(code, floodErr).toBe(0);

    // Refused with codes. The relay refuses streams beyond 128 unanswered per address (RST_STREAM
    // REFUSED_STREAM) and closes a connection that keeps trying (GOAWAY ENHANCE_YOUR_CALM: its queued
    // streams end with that code); Node's HTTP/2 layer answers streams opened beyond the connection's
    // limit with ENHANCE_YOUR_CALM and drops a connection after 100 of those (its streams: CANCEL).
    // What was let in waited for its body and got 408; nothing reached a password check.
    const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;
    const rst = (code: number) => result.rst[String(code)] ?? 0;
    expect(rst(NGHTTP2_REFUSED_STREAM)).toBeGreaterThan(0);
    // All five connections were closed with ENHANCE_YOUR_CALM (four for refused streams, the one the relay
    // kept for its timed-out ones, when the flood lasted past the body deadline); the streams still queued
    // in the client then failed there (ERR_HTTP2_INVALID_SESSION) without reaching the relay.
    expect(result.goaway[String(NGHTTP2_ENHANCE_YOUR_CALM)] ?? 0).toBeGreaterThanOrEqual(
      result.elapsedMs > BODY_TIMEOUT_S * 1_000 + 1_000 ? 5 : 4,
    );
    expect(result.settled).toBeGreaterThanOrEqual(40_000);
    // The streams the relay kept waited for their bodies and got 408, when the flood lasted past the body
    // deadline (on a fast machine the 40,000 refusals can come first; the 408 itself is asserted in
    // hardening-edge).
    if (result.elapsedMs > BODY_TIMEOUT_S * 1_000 + 1_000) expect(result.status['408'] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(result.status).filter((s) => s !== '408')).toEqual([]);
    // The shell answered every keystroke, promptly (target p99 < 50 ms; bound generous for a loaded CI).
    expect(during.length).toBeGreaterThan(20);
    expect(pct(during, 99)).toBeLessThan(1_000);
    expect(pct(healthz, 99)).toBeLessThan(3_000);
    // Memory: less than +100 MB at the peak, and back within a minute.
    expect(peak - rssBefore).toBeLessThan(100 * MB);
    expect(rssSettled - rssBefore).toBeLessThan(50 * MB);
    // The log did not grow a line per request (120k lines before).
    expect(logLines).toBeLessThan(100);
    // The shell still works.
    expect(await shell.keystroke()).toBeLessThan(5_000);
  }, 400_000);
});
