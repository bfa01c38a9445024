/**
 * Last line of defence: if the benchmark process itself is killed with SIGKILL (so no cleanup code
 * runs), a small detached shell notices within a second and kills the processes the run started (by
 * pid, from a list the run keeps), drops the run's databases and removes the temp dir. A normal exit
 * stops the watchdog first, so it never signals a pid that may have been reused.
 */
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ADMIN_URL } from '@mssh/test-fixtures/postgres';

let listFile: string | undefined;
const watched = new Set<number>();

function save(): void {
  if (listFile) writeFileSync(listFile, [...watched].join('\n') + '\n');
}

const SCRIPT = `
parent=$1; list=$2; root=$3; url=$4; pattern=$5
i=0
while kill -0 "$parent" 2>/dev/null && [ "$i" -lt 200000 ]; do sleep 0.5; i=$((i+1)); done
[ -f "$list" ] || exit 0
for p in $(cat "$list"); do kill -9 "$p" 2>/dev/null; done
if command -v psql >/dev/null 2>&1; then
  for db in $(psql "$url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE '$pattern'" 2>/dev/null); do
    psql "$url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
fi
rm -rf "$root" "$list"
`;

/** Start the watchdog; returns a function that stops it (call it at the very end of a normal cleanup). */
export function startWatchdog(root: string, runId: string): () => void {
  listFile = join(root, '..', `${root.split('/').pop()}.pids`);
  save();
  const w = spawn(
    '/bin/sh',
    ['-c', SCRIPT, 'mssh-bench-watchdog', String(process.pid), listFile, root, ADMIN_URL, `mssh_t_${runId}_%`],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  w.unref();
  return () => {
    try {
      if (w.pid) process.kill(w.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    if (listFile) rmSync(listFile, { force: true });
    listFile = undefined;
  };
}

/** Let the watchdog kill this child if the run dies; forgotten again as soon as the child exits. */
export function watch(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  watchPid(child.pid, (done) => child.once('exit', done));
}

/** The same for a process that is not a ChildProcess (a pty's): `onExit` registers the exit callback. */
export function watchPid(pid: number | undefined, onExit: (done: () => void) => void): void {
  if (!pid) return;
  watched.add(pid);
  save();
  onExit(() => {
    watched.delete(pid);
    save();
  });
}
