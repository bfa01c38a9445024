import { describe, expect, it } from 'vitest';
import type { HostInfo } from '@mssh/protocol';
import { cliError, isCliError } from '../errors.js';
import { classifyError, fanOut, formatSummary, runExitCode, type MachineResult } from './fan-out.js';
import { parseSelector, splitSelection } from './select.js';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(cliError('CLI_ERR_SSH_CONNECTION', 'tunnel reset', ''));
    });
  });

describe('fanOut', () => {
  it('runs at most `parallel` jobs at once and reports every machine in order', async () => {
    let running = 0;
    let peak = 0;
    const results = await fanOut({
      hosts: ['a', 'b', 'c', 'd', 'e', 'f'],
      offline: ['z'],
      parallel: 2,
      timeoutMs: null,
      job: async ({ host }) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(10);
        running--;
        return { exitCode: host === 'c' ? 3 : 0 };
      },
    });
    expect(peak).toBe(2);
    expect(results.map((r) => `${r.host}:${r.outcome}`)).toEqual([
      'z:unreachable',
      'a:ok',
      'b:ok',
      'c:failed',
      'd:ok',
      'e:ok',
      'f:ok',
    ]);
    expect(results[0]!.error?.code).toBe('CLI_ERR_HOST_OFFLINE');
    expect(results[3]!.exitCode).toBe(3);
    expect(runExitCode(results, false)).toBe(255);
    expect(runExitCode(results.slice(1), false)).toBe(1);
    expect(
      runExitCode(
        results.filter((r) => r.outcome === 'ok'),
        false,
      ),
    ).toBe(0);
  });

  it('a machine past its timeout is aborted and reported timed out; the others are not affected', async () => {
    const t0 = Date.now();
    const results = await fanOut({
      hosts: ['slow', 'fast'],
      parallel: 2,
      timeoutMs: 50,
      job: async ({ host, signal }) => {
        await sleep(host === 'slow' ? 10_000 : 5, signal);
        return { exitCode: 0 };
      },
    });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(results.map((r) => r.outcome)).toEqual(['timeout', 'ok']);
    expect(results[0]!.error?.code).toBe('CLI_ERR_MACHINE_TIMEOUT');
    expect(runExitCode(results, false)).toBe(1);
  });

  it('cancel aborts the running jobs, starts no more, and a job that ignores its signal is left after the grace', async () => {
    const ac = new AbortController();
    const started: string[] = [];
    const p = fanOut({
      hosts: ['a', 'b', 'c'],
      parallel: 2,
      timeoutMs: null,
      signal: ac.signal,
      graceMs: 50,
      onStart: (h) => started.push(h),
      job: async ({ host, signal }) => {
        if (host === 'b') await new Promise(() => {}); // never settles
        await sleep(10_000, signal);
        return { exitCode: 0 };
      },
    });
    setTimeout(() => ac.abort(), 20);
    const results = await p;
    expect(started).toEqual(['a', 'b']);
    expect(results.map((r) => r.outcome)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(runExitCode(results, true)).toBe(130);
  });

  it('classifies errors: unreachable, denied, error', () => {
    expect(classifyError(cliError('CLI_ERR_HOST_OFFLINE', 'x')).outcome).toBe('unreachable');
    expect(classifyError(cliError('CLI_ERR_NO_GRANT', 'x')).outcome).toBe('denied');
    expect(classifyError(cliError('CLI_ERR_SSH_AUTH_FAILED', 'x')).outcome).toBe('denied');
    expect(classifyError(cliError('CLI_ERR_HOST_KEY_CHANGED', 'x')).outcome).toBe('error');
    expect(classifyError(new Error('boom'))).toEqual({ outcome: 'error', code: 'CLI_ERR_INTERNAL', message: 'boom' });
  });

  it('the summary counts every outcome and names the machines that are not ok', () => {
    const r = (host: string, outcome: MachineResult['outcome'], extra: Partial<MachineResult> = {}): MachineResult => ({
      host,
      outcome,
      exitCode: null,
      signal: null,
      error: null,
      durationMs: 1,
      ...extra,
    });
    const text = formatSummary(
      'mssh exec',
      [
        r('a', 'ok', { exitCode: 0 }),
        r('b', 'failed', { exitCode: 2 }),
        r('c', 'failed', { exitCode: 143, signal: 'TERM' }),
        r('d', 'unreachable', { error: { code: 'CLI_ERR_HOST_OFFLINE', message: 'd is offline' } }),
      ],
      { runId: '0123456789abcdef' },
    );
    expect(text.split('\n')[0]).toBe('mssh exec: 4 machines: 1 ok, 2 failed, 1 unreachable (run 0123456789abcdef)');
    expect(text).toContain('b (exit 2), c (signal TERM)');
    expect(text).toContain('d (CLI_ERR_HOST_OFFLINE)');
    expect(text).toContain('d: d is offline [CLI_ERR_HOST_OFFLINE]');
  });
});

describe('machine selection', () => {
  const host = (name: string, online: boolean, labels: Record<string, string> = {}): HostInfo => ({
    name,
    online,
    lastSeen: null,
    hostKeys: [],
    hostKeyFingerprints: [],
    agentVersion: null,
    protocolVersion: null,
    labels,
  });
  const hosts = [host('web-2', false, { env: 'prod' }), host('web-1', true, { env: 'prod' }), host('db-1', true)];

  it('globs and labels select; online and offline are split, sorted by name', () => {
    const s = splitSelection(hosts, parseSelector({ words: ['web-*', 'env=prod'], all: false }, ''), 'x');
    expect(s.online.map((h) => h.name)).toEqual(['web-1']);
    expect(s.offline.map((h) => h.name)).toEqual(['web-2']);
    const all = splitSelection(hosts, parseSelector({ words: [], all: true }, ''), '--all');
    expect(all.online.map((h) => h.name)).toEqual(['db-1', 'web-1']);
  });

  it('nothing matched: CLI_ERR_NO_MATCH, exit 2; a bad label: CLI_ERR_BAD_LABEL, exit 2; no selector: usage', () => {
    const caught = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        if (isCliError(e)) return { code: e.code, exit: e.exitCode };
      }
      return null;
    };
    expect(caught(() => splitSelection(hosts, parseSelector({ words: ['nope-*'], all: false }, ''), 'x'))).toEqual({
      code: 'CLI_ERR_NO_MATCH',
      exit: 2,
    });
    expect(caught(() => parseSelector({ words: ['Env=prod'], all: false }, ''))).toEqual({
      code: 'CLI_ERR_BAD_LABEL',
      exit: 2,
    });
    expect(caught(() => parseSelector({ words: [], all: false }, ''))).toEqual({ code: 'CLI_ERR_USAGE', exit: 64 });
    expect(caught(() => parseSelector({ words: ['a'], all: true }, ''))).toEqual({ code: 'CLI_ERR_USAGE', exit: 64 });
  });
});
