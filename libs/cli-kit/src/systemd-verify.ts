/**
 * For tests: `systemd-analyze verify FILE` (systemd need not be PID 1). Returns the exit status and what it
 * said about the file (lines naming it or its unit), so that a warning such as "Unknown key" fails a test
 * although systemd-analyze exits 0 for it. Missing systemd-analyze throws with the fix: never a skip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';

export const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

export function systemdAnalyzeVerify(file: string): { status: number | null; complaints: string[] } {
  if (!existsSync(SYSTEMD_ANALYZE))
    throw new Error(`${SYSTEMD_ANALYZE} is missing: install it (apt-get install systemd) to test the units`);
  const r = spawnSync(SYSTEMD_ANALYZE, ['verify', file], { encoding: 'utf8', timeout: 30_000 });
  const unit = basename(file);
  const complaints = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(file) || l.includes(unit));
  return { status: r.status, complaints };
}
