import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { waitFor } from '@mssh/test-fixtures/net';
import { SessionSurvivorsError, sessionMembers, terminateSession, type SendSignal } from './process-session.js';
import { pgrep } from './test-support.js';

describe('terminateSession', () => {
  it('kills every process group of the session, SIGKILLing what ignores SIGHUP after the grace period', async () => {
    const tag = `${Date.now() % 100000}`;
    // bash's `set -m` puts the background job in its own process group; the foreground sleep ignores SIGHUP.
    const child = spawn('/bin/bash', ['-c', `set -m; sleep 1000.${tag}1 & trap '' HUP; sleep 1000.${tag}2; true`], {
      detached: true,
      stdio: 'ignore',
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      await waitFor(() => pgrep(`^sleep 1000\\.${tag}`).length === 2, 10_000, 'both sleeps to start');
      const members = await sessionMembers(child.pid!);
      expect(new Set(members.map((m) => m.pgid)).size).toBeGreaterThan(1);
      await terminateSession(child.pid!, 300);
      await exited;
      await waitFor(() => pgrep(`^sleep 1000\\.${tag}`).length === 0, 2000, 'the session to be gone');
      expect(await sessionMembers(child.pid!)).toEqual([]);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('rejects with the survivors and the refused signals when processes outlive SIGKILL, instead of resolving silently', async () => {
    const tag = `${Date.now() % 100000}`;
    const child = spawn('/bin/bash', ['-c', `trap '' HUP; sleep 1000.${tag}3; true`], {
      detached: true,
      stdio: 'ignore',
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // The kernel refusing SIGKILL (EPERM: a member that is not ours) cannot be staged as root: refuse it here.
    const refuseKill: SendSignal = (target, signal) => {
      if (signal === 'SIGKILL') throw Object.assign(new Error(`kill ${target} EPERM`), { code: 'EPERM' });
      process.kill(target, signal);
    };
    try {
      await waitFor(() => pgrep(`^sleep 1000\\.${tag}3`).length === 1, 10_000, 'the sleep to start');
      const err = await terminateSession(child.pid!, 200, { send: refuseKill }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SessionSurvivorsError);
      const e = err as SessionSurvivorsError;
      expect(e.sid).toBe(child.pid);
      expect(e.survivors.map((m) => m.pid)).toContain(child.pid);
      expect(e.failures).toContainEqual({ target: -child.pid!, signal: 'SIGKILL', code: 'EPERM' });
      expect(e.message).toMatch(/still alive after SIGKILL/);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
  });
});
