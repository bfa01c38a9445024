/**
 * Killing everything a session started. Every child of the embedded server is a session leader (node-pty
 * calls setsid; exec and sftp children are spawned detached, which also calls setsid), so its pid is the
 * session id of everything it starts, including jobs an interactive shell moves to their own process groups.
 * On Linux the members are found through /proc; elsewhere only the leader's process group is signalled.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

export const KILL_GRACE_MS = 1000;
const POLL_MS = 50;
const HAS_PROC = existsSync('/proc/self/stat');

interface ProcInfo {
  pid: number;
  pgid: number;
  state: string;
}

async function readStat(pid: number): Promise<(ProcInfo & { sid: number }) | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'latin1');
    // "pid (comm) state ppid pgrp session ..."; comm may contain spaces and parentheses.
    const close = text.lastIndexOf(')');
    const f = text.slice(close + 2).split(' ');
    return { pid, state: f[0] ?? '', pgid: Number(f[2]), sid: Number(f[3]) };
  } catch {
    return null;
  }
}

/** Live (non-zombie) processes whose session id is `sid`. Empty when /proc is not available. */
export async function sessionMembers(sid: number): Promise<ProcInfo[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const st = await readStat(Number(name));
    if (st && st.sid === sid && st.state !== 'Z' && st.state !== 'X')
      out.push({ pid: st.pid, pgid: st.pgid, state: st.state });
  }
  return out;
}

/** A signal the kernel refused for another reason than "no such process" (EPERM: not ours). */
export interface SignalFailure {
  target: number;
  signal: NodeJS.Signals;
  code: string;
}

/** How signals are sent: process.kill, replaceable in tests (a refusal cannot be staged as root). */
export type SendSignal = (target: number, signal: NodeJS.Signals) => void;
const sendSignal: SendSignal = (target, signal) => process.kill(target, signal);

function kill(send: SendSignal, target: number, signal: NodeJS.Signals, failures?: SignalFailure[]): void {
  try {
    send(target, signal);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'ESRCH') return; // already gone
    failures?.push({ target, signal, code });
  }
}

/** Send `signal` to the leader's process group and to every process group and process of its session. */
export async function signalSession(
  sid: number,
  signal: NodeJS.Signals,
  opts: { send?: SendSignal; failures?: SignalFailure[] } = {},
): Promise<ProcInfo[]> {
  const send = opts.send ?? sendSignal;
  const members = await sessionMembers(sid);
  const groups = new Set<number>([sid, ...members.map((m) => m.pgid)]);
  for (const g of groups) if (g > 1) kill(send, -g, signal, opts.failures);
  for (const m of members) if (m.pid > 1) kill(send, m.pid, signal, opts.failures);
  return members;
}

/** Whether a process is still running (not a zombie) and still in session `sid`. */
async function stillMember(pid: number, sid: number): Promise<boolean> {
  const st = await readStat(pid);
  return st !== null && st.sid === sid && st.state !== 'Z' && st.state !== 'X';
}

/** Processes of a session still alive after SIGKILL (a refused signal, or stuck in the kernel: state D). */
export class SessionSurvivorsError extends Error {
  constructor(
    readonly sid: number,
    readonly survivors: ProcInfo[],
    readonly failures: SignalFailure[],
  ) {
    const refused =
      failures.length > 0
        ? `; signals refused: ${failures.map((f) => `${f.signal} to ${f.target} (${f.code})`).join(', ')}`
        : '';
    super(
      `${survivors.length} process(es) of session ${sid} still alive after SIGKILL: ${survivors.map((m) => `${m.pid} (state ${m.state})`).join(', ')}${refused}`,
    );
    this.name = 'SessionSurvivorsError';
  }
}

/** How long terminateSession waits for SIGKILLed processes to disappear before reporting them. */
const REAP_WAIT_MS = 1000;

/**
 * SIGHUP the whole session; whatever is still alive after graceMs gets SIGKILL. Resolves when everything
 * is gone; rejects with SessionSurvivorsError (pids, states, refused signals) when processes are still
 * alive a moment after SIGKILL, so the caller can log them rather than leave them running unseen.
 */
export async function terminateSession(
  sid: number,
  graceMs = KILL_GRACE_MS,
  opts: { send?: SendSignal } = {},
): Promise<void> {
  if (!Number.isInteger(sid) || sid <= 1) return;
  const send = opts.send ?? sendSignal;
  const failures: SignalFailure[] = [];
  kill(send, -sid, 'SIGHUP', failures); // the leader's own group at once; the /proc scan below finds the other groups
  let known = await signalSession(sid, 'SIGHUP', { send, failures });
  kill(send, -sid, 'SIGCONT', failures); // stopped jobs only see SIGHUP once continued
  const deadline = Date.now() + graceMs;
  const maxPolls = Math.ceil(graceMs / POLL_MS) + 1;
  for (let i = 0; i < maxPolls && Date.now() < deadline; i++) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (!HAS_PROC) {
      if (!groupAlive(sid)) return;
      continue;
    }
    // Cheap check of the processes found so far; one full scan confirms before giving up early.
    const alive = (await Promise.all(known.map((m) => stillMember(m.pid, sid)))).some(Boolean);
    if (alive) continue;
    known = await sessionMembers(sid);
    if (known.length === 0) return;
  }
  await signalSession(sid, 'SIGKILL', { send, failures });
  if (!HAS_PROC) return;
  // SIGKILL is not refused by a process, but it can be by the kernel (EPERM) or wait on one stuck in D state.
  let survivors: ProcInfo[] = [];
  const reapDeadline = Date.now() + REAP_WAIT_MS;
  for (let i = 0; i < Math.ceil(REAP_WAIT_MS / POLL_MS) + 1; i++) {
    survivors = await sessionMembers(sid);
    if (survivors.length === 0 || Date.now() >= reapDeadline) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (survivors.length > 0) throw new SessionSurvivorsError(sid, survivors, failures);
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
