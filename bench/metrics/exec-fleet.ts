/**
 * Metric 10, one command on many machines (issue 21 item 4): `mssh exec` over N machines against what
 * a user would do otherwise, and against one session.
 *
 *   mssh exec 'bx-*' -- true ══ ONE process, ONE HTTP/2 connection ══▶ relay ══▶ N agents ──▶ one sshd
 *   xargs -P 32 ssh -o ProxyCommand='mssh proxy %n' NAME true   (N ssh + N mssh proxy processes)
 *
 * The agent runs one identity per process, so N real agents are started (`bx-001`...; 8 at a time, all in
 * front of the bench target sshd); the row says how many came up. `exec_one_ssh_s`: one `mssh ssh NAME true`
 * (median of the rounds). `exec_all_s`: `mssh exec` of `true` on every bx-* machine with --parallel P (a name
 * glob rather than --all: --all would also take bench-null, whose target is no SSH server), peak RSS from
 * /usr/bin/time. `exec_xargs_s`: the same names through xargs -P P over OpenSSH with the plain ProxyCommand.
 * Targets: exec <= 2 x one ssh x ceil(N / P); xargs / exec >= 3; client peak RSS <= 250 MB. One untimed
 * exec run first pins the N host keys (a first connection), as the timed runs then find them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, startAgent, type Agent } from '@mssh/test-fixtures/stack';
import type { BenchEnv } from '../lib/env.js';
import { onCleanup } from '../lib/cleanup.js';
import { SSH } from '../lib/openssh.js';
import type { Recorder } from '../lib/report.js';
import { median, round } from '../lib/stats.js';

export interface ExecFleetOptions {
  machines: number;
  parallel: number;
  rounds: number;
}

function log(msg: string): void {
  process.stderr.write(`bench:   ${msg}\n`);
}

function clientEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: '', ...extra };
  delete env.NODE_EXTRA_CA_CERTS; // see lib/paths.ts
  return env;
}

/** argv, under /usr/bin/time when rssFile is given; seconds, exit code, peak RSS (KiB), output tail. */
function runTimed(
  argv: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  rssFile?: string,
): Promise<{ s: number; code: number | null; rssKiB: number; out: string }> {
  const full = rssFile ? ['/usr/bin/time', '-f', '%M', '-o', rssFile, ...argv] : argv;
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(full[0]!, full.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-4000);
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      let rssKiB = 0;
      try {
        if (rssFile) rssKiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
      } catch {
        rssKiB = 0;
      }
      resolve({ s, code, rssKiB, out });
    });
  });
}

export async function runExecFleet(env: BenchEnv, rec: Recorder, opts: ExecFleetOptions): Promise<void> {
  const m = env.mssh!;
  const dir = mkdtempSync(join(env.root, 'exec-fleet-'));
  const agents: Agent[] = [];
  onCleanup('stop the exec agents', async () => {
    await Promise.all(agents.map((a) => a.proc?.stop('SIGTERM', 10_000)));
  });
  // As many real agents as the machine holds, up to N: 8 enrolled and started at a time; a batch where
  // none came up ends the start-up (memory or CPU ran out), the rest of the run uses those that came up.
  let startError: string | undefined;
  let lastError: string | undefined;
  const t0 = Date.now();
  for (let i = 0; i < opts.machines && !startError; i += 8) {
    const batch = Array.from(
      { length: Math.min(4, opts.machines - i) },
      (_, k) => `bx-${String(i + k + 1).padStart(3, '0')}`,
    );
    // The fixture waits 15 s for "connected to relay"; on a loaded machine an agent may need longer.
    const startOne = async (n: string): Promise<Agent> => {
      const a = await startAgent(m.relay, n, { target: `127.0.0.1:${env.target.port}`, start: false });
      try {
        await a.start();
      } catch {
        if (!a.proc?.running) throw new Error(`agent ${n} exited`);
        await a.proc.waitOutput(/connected to relay/, 60_000, 'both');
      }
      return a;
    };
    const got = await Promise.allSettled(batch.map(startOne));
    let up = 0;
    for (const g of got) {
      if (g.status === 'fulfilled') {
        agents.push(g.value);
        up++;
      } else lastError = (g.reason as Error).message.split('\n')[0];
    }
    if (up === 0) startError = lastError;
  }
  const n = agents.length;
  log(`${n} agents up in ${round((Date.now() - t0) / 1000, 1)} s${startError ? ` (stopped: ${startError})` : ''}`);
  if (n === 0) throw new Error(`no agent started: ${startError}`);
  const uenv = clientEnv({ ...m.user.env, MSSH_CACHE_DIR: join(env.root, 'mssh-cache') });
  const mssh = [process.execPath, BIN.mssh];
  const execArgv = [
    ...mssh,
    'exec',
    'bx-*',
    '-l',
    env.user,
    '-i',
    env.key.path,
    '--parallel',
    String(opts.parallel),
    '--',
    'true',
  ];
  const warm = await runTimed(execArgv, uenv, 600_000);
  log(`warm-up exec (pins ${n} keys): ${round(warm.s, 1)} s, exit ${warm.code}`);

  const one: number[] = [];
  const exec: { s: number; rssKiB: number }[] = [];
  const xargs: number[] = [];
  const errors: Record<string, string> = {};
  const names = agents.map((a) => a.name).join('\n') + '\n';
  const proxy = `'${process.execPath}' '${BIN.mssh}' proxy %n`;
  const sshArgs = ['-F', env.sshConfig, '-o', `ProxyCommand=${proxy}`, '-o', 'UserKnownHostsFile=/dev/null'];
  const xargsScript =
    `printf '%s' "$NAMES" | xargs -P ${opts.parallel} -I{} ${SSH} ${sshArgs.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')} ` +
    `-o StrictHostKeyChecking=no -o LogLevel=ERROR -o BatchMode=yes {} true`;
  for (let r = 0; r < opts.rounds; r++) {
    const s1 = await runTimed(
      [...mssh, 'ssh', '-i', env.key.path, `${env.user}@${agents[r % n]!.name}`, '--', 'true'],
      uenv,
      60_000,
    );
    if (s1.code === 0) one.push(s1.s);
    else errors.one = `exit ${s1.code}: ${s1.out.slice(-300)}`;
    const e = await runTimed(execArgv, uenv, 600_000, join(dir, 'rss'));
    if (e.code === 0) exec.push({ s: e.s, rssKiB: e.rssKiB });
    else errors.exec = `exit ${e.code}: ${e.out.slice(-300)}`;
    const x = await runTimed(['sh', '-c', xargsScript], { ...uenv, NAMES: names }, 900_000);
    if (x.code === 0) xargs.push(x.s);
    else errors.xargs = `exit ${x.code}: ${x.out.slice(-300)}`;
    log(
      `round ${r + 1}: one ssh ${round(s1.s, 2)} s, exec ${round(e.s, 1)} s (${round(e.rssKiB / 1024, 1)} MiB), xargs ${round(x.s, 1)} s`,
    );
  }
  const oneS = median(one);
  const execS = median(exec.map((e) => e.s));
  const rssMiB = median(exec.map((e) => e.rssKiB / 1024));
  const xargsS = median(xargs);
  const budget = 2 * oneS * Math.ceil(n / opts.parallel);
  const extra = {
    machines: n,
    asked: opts.machines,
    parallel: opts.parallel,
    agentStartError: startError ?? lastError,
  };
  rec.add({
    metric: 'exec_one_ssh_s',
    path: 'mssh ssh',
    value: round(oneS, 2),
    unit: 's',
    better: 'lower',
    ok: one.length === opts.rounds,
    error: errors.one,
    samples: one.map((x) => round(x, 2)),
  });
  rec.add({
    metric: 'exec_all_s',
    path: 'mssh exec',
    value: round(execS, 2),
    unit: 's',
    better: 'lower',
    ok: exec.length === opts.rounds && execS <= budget,
    error:
      errors.exec ??
      (execS > budget
        ? `over the target 2 x ${round(oneS, 2)} s x ceil(${n}/${opts.parallel}) = ${round(budget, 1)} s`
        : undefined),
    samples: exec.map((x) => round(x.s, 2)),
    extra: { ...extra, targetS: round(budget, 1), xargsOverExec: round(xargsS / execS, 2) },
  });
  rec.add({
    metric: 'exec_rss_mib',
    path: 'mssh exec',
    value: round(rssMiB, 1),
    unit: 'MiB',
    better: 'lower',
    ok: exec.length === opts.rounds && rssMiB <= 250 / 1.048576,
    samples: exec.map((x) => round(x.rssKiB / 1024, 1)),
    extra,
  });
  rec.add({
    metric: 'exec_xargs_s',
    path: 'xargs -P ssh+mssh proxy',
    value: round(xargsS, 2),
    unit: 's',
    better: 'lower',
    ok: xargs.length === opts.rounds && xargsS >= 3 * execS,
    error:
      errors.xargs ?? (xargsS < 3 * execS ? `xargs / exec = ${round(xargsS / execS, 2)}x, target >= 3x` : undefined),
    samples: xargs.map((x) => round(x, 2)),
    extra: { ...extra, target: 'xargs >= 3 x exec' },
  });
}
