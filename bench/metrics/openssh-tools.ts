/**
 * Metric 8, OpenSSH-driven tools (issue 21, items 4 and 5): what the helpers OpenSSH starts for every
 * connection through `mssh config ssh` cost, and what that means for Ansible.
 *
 *  - cold start (`lean_start_ms`, `lean_rss_mib`): `node -e 0` (Node's own floor, until it exited) against
 *    `mssh proxy HOST` (spawn -> first byte on a TCP listener standing in for the relay: its TLS
 *    ClientHello) and `mssh known-hosts openssh HOST TYPE KEY` for a pinned machine (spawn -> exit);
 *    peak RSS from /usr/bin/time. Interleaved, median of the rounds. Targets: proxy <= node + 60 ms,
 *    RSS <= node + 10 MiB. LEAN_COMMANDS is the hook for more (e.g. `mssh exec`, built on branch exec).
 *  - `lean_concurrent_ok`: N OpenSSH sessions (`ssh ... bench-target.mssh true`) started at once through
 *    the generated config (ProxyCommand and KnownHostsCommand); how many exited 0, and the time for all.
 *  - `ansible_ping_s`: `ansible -m ping` of an inventory of M names (all the bench target: M aliases of
 *    one machine, so no more agents are needed), direct (`ansible_host=127.0.0.1`) and through mssh, with
 *    ControlMaster off and with Ansible's default ControlPersist; one run each, direct first.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { BIN } from '@mssh/test-fixtures/stack';
import { TARGET_HOST, type BenchEnv } from '../lib/env.js';
import { SSH } from '../lib/openssh.js';
import type { Recorder } from '../lib/report.js';
import { median, round } from '../lib/stats.js';

export interface OpensshToolsOptions {
  rounds: number;
  concurrent: number;
  ansibleHosts: number;
}

/** Commands measured against `node -e 0`: [path id, argv after `mssh`, timed to the first relay byte?]. */
type LeanCommand = { path: string; args: (host: string, keyLine: string[]) => string[]; firstByte: boolean };
const LEAN_COMMANDS: LeanCommand[] = [
  { path: 'mssh proxy', args: (h) => ['proxy', `${h}.mssh`], firstByte: true },
  { path: 'known-hosts openssh', args: (h, k) => ['known-hosts', 'openssh', `${h}.mssh`, ...k], firstByte: false },
  // Branch exec: { path: 'mssh exec', args: (h) => ['exec', h, 'true'], firstByte: true },
];

function clientEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: '', ...extra };
  delete env.NODE_EXTRA_CA_CERTS; // see lib/paths.ts
  return env;
}

/** Run argv under /usr/bin/time; ms until `until` resolves (default: exit) and the peak RSS in KiB. */
async function timed(
  argv: string[],
  env: NodeJS.ProcessEnv,
  rssFile: string,
  until?: Promise<unknown>,
): Promise<{ ms: number; rssKiB: number }> {
  const t0 = process.hrtime.bigint();
  const p = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, ...argv], { env, stdio: ['pipe', 'ignore', 'ignore'] });
  const exit = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  const killer = setTimeout(() => p.kill('SIGKILL'), 30_000);
  let ms: number;
  if (until) {
    await Promise.race([until, exit]);
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
    p.stdin.end();
    await exit;
  } else {
    p.stdin.end();
    await exit;
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  clearTimeout(killer);
  const rssKiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
  return { ms, rssKiB };
}

async function coldStart(env: BenchEnv, rec: Recorder, dir: string, keyLine: string[], rounds: number): Promise<void> {
  // A stand-in relay: it only notes when the first byte arrives and hangs up.
  let waiting: (() => void) | null = null;
  const srv = createServer((s) =>
    s.once('data', () => {
      waiting?.();
      s.destroy();
    }),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const url = `https://127.0.0.1:${(srv.address() as { port: number }).port}`;
  const cfgDir = join(dir, 'cold');
  mkdirSync(cfgDir, { recursive: true, mode: 0o700 });
  const pinned = readFileSync(join(env.mssh!.user.configDir, 'known_hosts'), 'utf8');
  writeFileSync(join(cfgDir, 'known_hosts'), pinned, { mode: 0o600 });
  writeFileSync(
    join(cfgDir, 'credentials.json'),
    JSON.stringify({
      version: 1,
      current: url,
      relays: { [url]: { url, fingerprint: `SHA256:${'A'.repeat(43)}`, token: 'x', user: 'bench' } },
    }),
    { mode: 0o600 },
  );
  const cenv = clientEnv({ MSSH_CONFIG_DIR: cfgDir, MSSH_CACHE_DIR: join(env.root, 'mssh-cache') });
  const rss = join(dir, 'rss');
  const cases: { path: string; argv: string[]; firstByte: boolean }[] = [
    { path: 'node -e 0', argv: [process.execPath, '-e', '0'], firstByte: false },
    ...LEAN_COMMANDS.map((c) => ({
      path: c.path,
      argv: [process.execPath, BIN.mssh, ...c.args(TARGET_HOST, keyLine)],
      firstByte: c.firstByte,
    })),
  ];
  const samples = new Map(cases.map((c) => [c.path, [] as { ms: number; rssKiB: number }[]]));
  const errors = new Map<string, string>();
  const one = async (c: (typeof cases)[number]) => {
    const got = c.firstByte ? new Promise<void>((r) => (waiting = r)) : undefined;
    const s = await timed(c.argv, cenv, rss, got);
    waiting = null;
    return s;
  };
  for (const c of cases) await one(c).catch(() => {}); // warm-up: page cache, code cache
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < cases.length; i++) {
      const c = cases[(i + r) % cases.length]!;
      try {
        samples.get(c.path)!.push(await one(c));
      } catch (e) {
        errors.set(c.path, (e as Error).message);
      }
    }
  srv.close();
  for (const c of cases) {
    const s = samples.get(c.path)!;
    const ms = s.map((x) => x.ms);
    const mib = s.map((x) => x.rssKiB / 1024);
    const base = { path: c.path, ok: !errors.has(c.path) && s.length === rounds, error: errors.get(c.path) };
    rec.add({
      ...base,
      metric: 'lean_start_ms',
      value: round(median(ms), 1),
      unit: 'ms',
      better: 'lower',
      samples: ms.map((x) => round(x, 1)),
      extra: { until: c.firstByte ? 'first byte to the relay' : 'exit' },
    });
    rec.add({
      ...base,
      metric: 'lean_rss_mib',
      value: round(median(mib), 1),
      unit: 'MiB',
      better: 'lower',
      samples: mib.map((x) => round(x, 1)),
    });
  }
}

function runQuiet(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    const t0 = Date.now();
    p.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, out: signal ? `${out}[killed by ${signal}]` : out, ms: Date.now() - t0 });
    });
  });
}

async function concurrent(
  env: BenchEnv,
  rec: Recorder,
  cfg: string,
  msshEnv: NodeJS.ProcessEnv,
  n: number,
): Promise<void> {
  // The same N at once straight to the target sshd first: the machine's own capacity, for comparison.
  for (const [path, args, e] of [
    ['direct', ['-F', env.sshConfig, '-p', String(env.target.port), '127.0.0.1'], clientEnv({})],
    ['ssh+mssh config', ['-F', cfg, `${env.user}@${TARGET_HOST}.mssh`], msshEnv],
  ] as const) {
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: n }, () => runQuiet(SSH, [...args, '-o', 'LogLevel=INFO', 'true'], e, 180_000)),
    );
    const ok = results.filter((r) => r.code === 0).length;
    const failedOne = results.find((r) => r.code !== 0);
    const firstError =
      failedOne &&
      `exit ${failedOne.code} after ${failedOne.ms} ms: ${failedOne.out.trim().split('\n').slice(0, 6).join(' | ')}`;
    rec.add({
      metric: 'lean_concurrent_ok',
      path,
      value: ok,
      unit: 'sessions',
      better: 'higher',
      ok: ok === n,
      error: ok === n ? undefined : `${n - ok} of ${n} failed: ${firstError}`,
      extra: { started: n, allDoneS: round((Date.now() - t0) / 1000, 1) },
    });
  }
}

async function ansible(
  env: BenchEnv,
  rec: Recorder,
  dir: string,
  cfg: string,
  msshEnv: NodeJS.ProcessEnv,
  m: number,
): Promise<void> {
  const names = Array.from({ length: m }, (_, i) => `m${String(i + 1).padStart(2, '0')}`);
  const inventory = (path: string) =>
    [
      '[fleet]',
      ...names.map((n) =>
        path === 'direct'
          ? `${n} ansible_host=127.0.0.1 ansible_port=${env.target.port}`
          : `${n} ansible_host=${TARGET_HOST}.mssh`,
      ),
      '[fleet:vars]',
      `ansible_user=${env.user}`,
      `ansible_ssh_private_key_file=${env.key.path}`,
      '',
    ].join('\n');
  for (const variant of ['ControlMaster off', 'ControlPersist'] as const) {
    for (const path of ['direct', 'ssh+mssh config']) {
      const d = mkdtempSync(join(dir, 'ansible-'));
      for (const sub of ['cp', 'home', 'local']) mkdirSync(join(d, sub));
      writeFileSync(join(d, 'inventory.ini'), inventory(path));
      const sshArgs =
        variant === 'ControlPersist' ? '-C -o ControlMaster=auto -o ControlPersist=60s' : '-o ControlMaster=no';
      writeFileSync(
        join(d, 'ansible.cfg'),
        [
          '[defaults]',
          `inventory = ${join(d, 'inventory.ini')}`,
          'interpreter_python = /usr/bin/python3',
          'gathering = explicit',
          `local_tmp = ${join(d, 'local')}`,
          `remote_tmp = ${join(d, 'remote')}`,
          '[ssh_connection]',
          `ssh_args = -F ${path === 'direct' ? env.sshConfig : cfg} ${sshArgs}`,
          `control_path_dir = ${join(d, 'cp')}`,
          'pipelining = False',
          '',
        ].join('\n'),
      );
      const aenv = {
        ...(path === 'direct' ? clientEnv({}) : msshEnv),
        ANSIBLE_CONFIG: join(d, 'ansible.cfg'),
        ANSIBLE_HOME: join(d, 'home'),
        ANSIBLE_NOCOLOR: '1',
      };
      const t0 = process.hrtime.bigint();
      const r = await runQuiet('ansible', ['fleet', '-m', 'ping', '-o'], aenv, 300_000);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const pongs = (r.out.match(/SUCCESS => .*"ping": "pong"/g) ?? []).length;
      rec.add({
        metric: 'ansible_ping_s',
        path,
        variant,
        value: round(s, 2),
        unit: 's',
        better: 'lower',
        ok: r.code === 0 && pongs === m,
        error: r.code === 0 && pongs === m ? undefined : `exit ${r.code}, ${pongs} of ${m} pong: ${r.out.slice(-300)}`,
        extra: { hosts: m, pipelining: false },
      });
      // The persistent masters of this run end with the relay; direct ones are told to go now.
      if (variant === 'ControlPersist')
        for (const n of names) await runQuiet('ansible', [n, '-m', 'meta', '-a', 'reset_connection'], aenv, 30_000);
    }
  }
}

export async function runOpensshTools(env: BenchEnv, rec: Recorder, opts: OpensshToolsOptions): Promise<void> {
  const m = env.mssh!;
  const dir = mkdtempSync(join(env.root, 'openssh-tools-'));
  const block = await m.user.mssh(['config', 'ssh']);
  if (block.code !== 0) throw new Error(`mssh config ssh failed: ${block.stderr}`);
  // The generated block first (first value wins), then the run's own settings (key, user, no sharing).
  const cfg = join(dir, 'ssh_config');
  writeFileSync(cfg, block.stdout + readFileSync(env.sshConfig, 'utf8'), { mode: 0o600 });
  const msshEnv = clientEnv({ ...m.user.env, MSSH_CACHE_DIR: join(env.root, 'mssh-cache') });
  // One session pins the target's keys (KnownHostsCommand), as a user's first connection does.
  const first = await runQuiet(SSH, ['-F', cfg, `${env.user}@${TARGET_HOST}.mssh`, 'true'], msshEnv, 60_000);
  if (first.code !== 0) throw new Error(`ssh through the generated config failed: ${first.out}`);
  const pin = readFileSync(join(m.user.configDir, 'known_hosts'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${TARGET_HOST} `));
  const keyLine = pin ? pin.split(/\s+/).slice(1, 3) : ['NONE', 'NONE'];
  await coldStart(env, rec, dir, keyLine, opts.rounds);
  await concurrent(env, rec, cfg, msshEnv, opts.concurrent);
  await ansible(env, rec, dir, cfg, msshEnv, opts.ansibleHosts);
}
