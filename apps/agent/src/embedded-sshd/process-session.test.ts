import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../../e2e/fixtures/net.js';
import { sessionMembers, terminateSession } from './process-session.js';
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
});
