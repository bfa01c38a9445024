/**
 * Child processes of the benchmark (sshd, ssh, the mssh bins) and what /proc says about them.
 * Every process spawned through `track()` is killed by `killTracked()` (registered as a cleanup step).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type { IPty } from 'node-pty';
import { watch, watchPid } from './watchdog.js';

const live = new Set<ChildProcess>();
const livePtys = new Set<IPty>();

/** A process in a pseudo-terminal (node-pty), killed by killTracked() like the others. */
export function trackPty(p: IPty): IPty {
  livePtys.add(p);
  watchPid(p.pid, (done) => p.onExit(() => done()));
  p.onExit(() => livePtys.delete(p));
  return p;
}

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  watch(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return track(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts }));
}

/** SIGKILL every tracked process still running and wait (at most 5 s) for them to go. */
export async function killTracked(): Promise<void> {
  for (const c of [...live]) c.kill('SIGKILL');
  for (const p of [...livePtys]) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 5_000;
  while ((live.size || livePtys.size) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? 128);
  return new Promise((res) => child.once('exit', (code, sig) => res(code ?? (sig ? 128 : null))));
}

/** Resident set size of a process in bytes (VmRSS), or 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time a process has used so far (user + system, all its threads), in ms, or NaN when it is gone.
 * /proc/PID/stat fields 14 and 15 count clock ticks (100 per second on Linux).
 */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Proportional set size of a process in bytes (from smaps_rollup), or 0 when it is gone. */
export function pssBytes(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Parent pid of every process on the machine. */
function parentMap(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so cut after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  return children;
}

/** Every descendant of `pid` (children, grandchildren, ...), not including pid itself. */
export function descendants(pid: number): number[] {
  const children = parentMap();
  const out: number[] = [];
  const queue = [pid];
  for (let i = 0; i < queue.length && i < 100_000; i++) {
    for (const c of children.get(queue[i]!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Sum of PSS over a process and all its descendants, and how many processes that was. */
export function treePss(pid: number): { bytes: number; processes: number } {
  const pids = [pid, ...descendants(pid)];
  let bytes = 0;
  for (const p of pids) bytes += pssBytes(p);
  return { bytes, processes: pids.length };
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
