/**
 * `npm run bench`: mssh against the OpenSSH reverse-tunnel baseline, measured side by side in one run
 * (issue 8). See bench/README.md for what each metric means and how the baseline is set up.
 *
 *   node --import tsx bench/run.ts [--quick] [--paths direct,jump,mssh-ssh,mssh-proxy]
 *        [--metrics bulk,setup,prompt,latency,concurrency,rate,reconnect,fleet,openssh,wan,exec] [--sessions N] [--mib N] [--profile DIR]
 *        [--ssh-at-once N] [--exec-machines N] [--wan DELAYS_MS] [--wan-rate MBITS]
 */
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { cleanup, installExitHandlers } from './lib/cleanup.js';
import { setUp, ROOT } from './lib/env.js';
import { ALL_PATHS, MSSH_PATHS, PATH_LABELS, type PathId } from './lib/paths.js';
import { Recorder, machineInfo, gitInfo, table, type Row } from './lib/report.js';
import { runBulk } from './metrics/bulk.js';
import { runSetup } from './metrics/setup.js';
import { runPrompt, TUI_PATH } from './metrics/prompt.js';
import { runLatency } from './metrics/latency.js';
import { runConcurrency } from './metrics/concurrency.js';
import { runRate } from './metrics/rate.js';
import { runReconnect } from './metrics/reconnect.js';
import { runFleet } from './metrics/fleet.js';
import { runOpensshTools } from './metrics/openssh-tools.js';
import { runExecFleet } from './metrics/exec-fleet.js';
import { runWan, conditionLabel, WAN_METRICS, type WanCondition } from './metrics/wan.js';
import { setUpWan } from './lib/wan.js';

const METRICS = [
  'bulk',
  'setup',
  'prompt',
  'latency',
  'concurrency',
  'rate',
  'reconnect',
  'fleet',
  'openssh',
  'wan',
  'exec',
] as const;
type Metric = (typeof METRICS)[number];
/** Run when --metrics is not given: all but the WAN mode, which runs on request (--metrics wan, --wan). */
// wan and exec (hundreds of agent processes) only when asked for.
const DEFAULT_METRICS = METRICS.filter((m) => m !== 'wan' && m !== 'exec');
/** The paths of the WAN mode (ssh + mssh proxy only when --paths names it). */
const WAN_PATHS: PathId[] = ['jump', 'mssh-ssh', 'mssh-proxy'];

const USAGE = `usage: npm run bench -- [--quick] [--paths ${ALL_PATHS.join(',')}] [--metrics ${METRICS.join(',')}] [--sessions N] [--mib N] [--ssh-at-once N] [--exec-machines N] [--profile DIR] [--wan DELAYS_MS] [--wan-rate MBITS]`;

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  let v;
  try {
    v = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        paths: { type: 'string' },
        metrics: { type: 'string' },
        sessions: { type: 'string' },
        mib: { type: 'string' },
        'ssh-at-once': { type: 'string' },
        'exec-machines': { type: 'string' },
        profile: { type: 'string' },
        wan: { type: 'string' },
        'wan-rate': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const list = <T extends string>(s: string | undefined, all: readonly T[], what: string): T[] => {
    if (!s) return [...all];
    const items = s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    const bad = items.filter((x) => !all.includes(x as T));
    if (bad.length) fail(`unknown ${what}: ${bad.join(', ')} (known: ${all.join(', ')})`);
    return items as T[];
  };
  const int = (s: string | undefined, def: number, what: string, max: number): number => {
    if (s === undefined) return def;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > max) fail(`--${what} must be an integer from 1 to ${max}`);
    return n;
  };
  const quick = v.quick;
  const numbers = (s: string | undefined, def: number[], what: string, min: number, max: number): number[] => {
    if (s === undefined) return def;
    const xs = s.split(',').map((x) => Number(x.trim()));
    if (!xs.length || xs.some((x) => !Number.isInteger(x) || x < min || x > max))
      fail(`--${what} takes a comma-separated list of integers from ${min} to ${max}`);
    return [...new Set(xs)];
  };
  const wanAsked = v.wan !== undefined || v['wan-rate'] !== undefined;
  const delays = numbers(v.wan, [10, 40], 'wan', 0, 1000);
  const rates = numbers(v['wan-rate'], [0, 100], 'wan-rate', 0, 100_000);
  const conditions: WanCondition[] =
    quick && !wanAsked
      ? [
          { delayMs: 10, rateMbit: 0 },
          { delayMs: 40, rateMbit: 100 },
        ]
      : delays.flatMap((delayMs) => rates.map((rateMbit) => ({ delayMs, rateMbit })));
  const metrics = v.metrics
    ? list<Metric>(v.metrics, METRICS, 'metric')
    : wanAsked
      ? ['wan' as Metric]
      : DEFAULT_METRICS;
  return {
    quick,
    profileDir: v.profile ? resolve(v.profile) : undefined,
    paths: list<PathId>(v.paths, ALL_PATHS, 'path'),
    metrics,
    wanPaths: v.paths
      ? list<PathId>(v.paths, ALL_PATHS, 'path').filter((p) => WAN_PATHS.includes(p))
      : (['jump', 'mssh-ssh'] as PathId[]),
    bulk: { mib: int(v.mib, quick ? 32 : 256, 'mib', 4096), rounds: quick ? 1 : 3 },
    setup: { rounds: quick ? 3 : 10 },
    prompt: { rounds: quick ? 3 : 10 },
    latency: { warmup: quick ? 1000 : 3000, trips: quick ? 100 : 500 },
    concurrency: {
      sessions: int(v.sessions, quick ? 50 : 1000, 'sessions', 5000),
      parallel: quick ? 25 : 100,
      timeoutMs: quick ? 60_000 : 300_000,
      fresh: !quick,
    },
    rate: { seconds: quick ? 3 : 10, parallel: 32, conns: 4 },
    reconnect: { rounds: quick ? 1 : 3, timeoutMs: 30_000, healthyMs: quick ? 0 : 61_000 },
    fleet: {
      setupRounds: quick ? 5 : 20,
      mib: int(v.mib, quick ? 32 : 256, 'mib', 4096),
      bulkRounds: quick ? 1 : 3,
      kills: quick ? 3 : 10,
      rateSeconds: quick ? 3 : 10,
    },
    openssh: {
      rounds: quick ? 3 : 10,
      concurrent: int(v['ssh-at-once'], quick ? 20 : 200, 'ssh-at-once', 1000),
      ansibleHosts: quick ? 4 : 12,
    },
    exec: {
      machines: int(v['exec-machines'], quick ? 20 : 200, 'exec-machines', 1000),
      parallel: 32,
      rounds: quick ? 1 : 2,
    },
    wan: {
      conditions,
      mib: int(v.mib, quick ? 16 : 64, 'mib', 4096),
      rounds: quick ? 1 : 3,
      parallel: 4,
      setupRounds: quick ? 3 : 10,
      keyWarmup: quick ? 10 : 30,
      keyTrips: quick ? 40 : 200,
      holTrips: quick ? 40 : 200,
      holSettleMs: quick ? 1_000 : 2_000,
      holMaxMs: quick ? 60_000 : 180_000,
    },
    limitMs: (quick ? 5 : 45) * 60_000 + (!quick && metrics.includes('wan') ? 30 * 60_000 : 0),
  };
}

const PROCESS_ROWS: Row[] = [
  { label: 'bulk 256 MiB into wc -c', metric: 'bulk_mbps', target: '>= 1.0x jump' },
  { label: 'session setup `true`', metric: 'setup_ms', target: '<= 1.0x jump' },
  { label: 'shell prompt (TUI: from Enter)', metric: 'prompt_ms' },
  { label: 'latency p50, steady', metric: 'latency_p50_us', target: '<= 1.0x jump' },
  { label: 'latency p99, steady', metric: 'latency_p99_us' },
  { label: 'latency p50, first trips', metric: 'latency_cold_p50_us' },
];

const INPROC_ROWS: Row[] = [
  ...(['1 client conn', 'conn/session'] as const).flatMap((variant): Row[] => [
    { label: `sessions up [${variant}]`, metric: 'conc_ok', variant, target: 'all, 0 failures' },
    { label: `time until all up [${variant}]`, metric: 'conc_up_s', variant },
    { label: `relay/bastion mem at 0 [${variant}]`, metric: 'conc_middle_mib_0', variant },
    { label: `relay/bastion mem at N [${variant}]`, metric: 'conc_middle_mib_n', variant },
    {
      label: `relay/bastion per session [${variant}]`,
      metric: 'conc_middle_kib_per_session',
      variant,
      target: 'relay <= 64 KiB',
    },
    { label: `agent/ssh -R per session [${variant}]`, metric: 'conc_edge_kib_per_session', variant },
    { label: `target sshd per session [${variant}]`, metric: 'conc_target_kib_per_session', variant },
  ]),
  { label: 'session starts/s (Postgres audit)', metric: 'rate_starts_per_s', target: '>= 500/s' },
  { label: 'reconnect after restart', metric: 'reconnect_ms', target: '<= 2000 ms' },
];

const FLEET_ROWS: Row[] = [
  { label: 'session setup `true`', metric: 'fleet_setup_ms', target: 'forwarded <= 1.15x direct' },
  { label: 'bulk into wc -c', metric: 'fleet_bulk_mbps', target: 'forwarded >= 0.9x direct' },
  { label: 'reachable after kill -9 of the holder, p50', metric: 'fleet_failover_p50_ms', target: '<= 2000 ms' },
  { label: 'reachable after kill -9 of the holder, max', metric: 'fleet_failover_max_ms', target: '<= 5000 ms' },
  { label: 'audited session starts/s, 3 relays in all', metric: 'fleet_rate_starts_per_s', target: '>= 2000/s' },
];

const OPENSSH_ROWS: Row[] = [
  { label: 'cold start (proxy: to first relay byte)', metric: 'lean_start_ms', target: 'proxy <= node + 60 ms' },
  { label: 'peak RSS', metric: 'lean_rss_mib', target: 'proxy <= node + 10 MiB' },
];
const ANSIBLE_ROWS: Row[] = [
  {
    label: 'ansible ping, ControlMaster off',
    metric: 'ansible_ping_s',
    variant: 'ControlMaster off',
    target: '<= 1.5x direct',
  },
  { label: 'ansible ping, ControlPersist', metric: 'ansible_ping_s', variant: 'ControlPersist' },
  { label: 'OpenSSH sessions started at once, exit 0', metric: 'lean_concurrent_ok', target: 'all' },
];

async function main(): Promise<void> {
  const o = parse();
  installExitHandlers(o.limitMs);
  const t0 = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const machine = machineInfo();
  const git = gitInfo(ROOT);
  const file = join(ROOT, 'bench/results', `${stamp}${o.quick ? '-quick' : ''}.jsonl`);
  const rec = new Recorder(file, { runAt: new Date().toISOString(), mode: o.quick ? 'quick' : 'full', machine, git });
  const wantMssh = [...o.paths, ...(o.metrics.includes('wan') ? o.wanPaths : [])].some((p) => MSSH_PATHS.includes(p));
  process.stderr.write(
    `bench: ${o.quick ? 'quick' : 'full'} run, metrics ${o.metrics.join(', ')}; paths ${o.paths.join(', ')}\n`,
  );

  // The concurrency metric holds N sessions of ONE user to ONE machine: lift the relay's session caps
  // (defaults 64 per user, 256 per machine, 4096 in all) above N, as an operator expecting that load would.
  // All of it comes from one address (loopback), N tunnels on one connection or N connections: lift the
  // per-connection stream limit (128) and the per-address limits (32 connections, 128 unanswered requests).
  const cap = String(Math.max(o.concurrency.sessions + 100, 4096));
  const relayArgs = [
    '--max-sessions-per-user',
    cap,
    '--max-sessions-per-agent',
    cap,
    '--max-sessions',
    cap,
    '--max-streams-per-connection',
    cap,
    '--max-connections-per-address',
    '0',
    '--max-pending-per-address',
    '0',
  ];
  const env = await setUp({ mssh: wantMssh, profileDir: o.profileDir, relayArgs });
  let paths = o.paths;
  if (!env.mssh) {
    if (wantMssh) process.stderr.write(`bench: mssh paths ${env.msshProblem}; measuring the OpenSSH paths only\n`);
    paths = paths.filter((p) => !MSSH_PATHS.includes(p));
  }
  const phase = (name: string) =>
    process.stderr.write(`bench: == ${name} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
  const has = (m: Metric) => o.metrics.includes(m);
  if (has('bulk')) {
    phase(`bulk ${o.bulk.mib} MiB x ${o.bulk.rounds}`);
    await runBulk(env, rec, paths, o.bulk);
  }
  if (has('setup')) {
    phase(`session setup x ${o.setup.rounds}`);
    await runSetup(env, rec, paths, o.setup);
  }
  // `paths` holds an mssh path only when the mssh programs are up (filtered above).
  const tui = paths.some((p) => MSSH_PATHS.includes(p));
  if (has('prompt')) {
    phase(`time to a shell prompt x ${o.prompt.rounds}`);
    await runPrompt(env, rec, paths, { ...o.prompt, tui });
  }
  if (has('latency')) {
    phase(`latency ${o.latency.trips} round trips after ${o.latency.warmup}`);
    await runLatency(env, rec, paths, o.latency);
  }
  if (has('concurrency')) {
    phase(`concurrency ${o.concurrency.sessions} sessions`);
    await runConcurrency(env, rec, o.concurrency);
  }
  if (has('rate')) {
    phase(`session start rate ${o.rate.seconds} s`);
    await runRate(env, rec, o.rate);
  }
  if (has('reconnect')) {
    phase(`reconnect x ${o.reconnect.rounds}`);
    await runReconnect(env, rec, o.reconnect);
  }
  if (has('fleet') && env.mssh) {
    phase(
      `relay fleet: 3 relays, set-up x ${o.fleet.setupRounds}, bulk ${o.fleet.mib} MiB x ${o.fleet.bulkRounds}, kill -9 x ${o.fleet.kills}`,
    );
    await runFleet(env, rec, o.fleet);
  }
  if (has('openssh') && env.mssh) {
    phase(
      `OpenSSH-driven tools: cold start x ${o.openssh.rounds}, ${o.openssh.concurrent} ssh at once, ansible ping of ${o.openssh.ansibleHosts}`,
    );
    await runOpensshTools(env, rec, o.openssh);
  }
  if (has('exec') && env.mssh) {
    phase(
      `mssh exec over ${o.exec.machines} machines (real agents), against one mssh ssh and xargs -P ${o.exec.parallel}`,
    );
    await runExecFleet(env, rec, o.exec);
  }
  let wanPaths = o.wanPaths.filter((p) => env.mssh || !MSSH_PATHS.includes(p));
  if (has('wan')) {
    phase(
      `WAN mode: ${o.wan.conditions.map(conditionLabel).join(' / ')} per leg; paths ${wanPaths.join(', ')}; ` +
        `bulk ${o.wan.mib} MiB x ${o.wan.rounds}, set-up x ${o.wan.setupRounds}, keystrokes ${o.wan.keyTrips} after ${o.wan.keyWarmup}, HOL ${o.wan.holTrips}`,
    );
    const wan = await setUpWan(env);
    if (!wan.env.mssh) wanPaths = wanPaths.filter((p) => !MSSH_PATHS.includes(p));
    await runWan(wan, rec, wanPaths, o.wan);
  }
  phase('done');

  const bulkLabel = { ...PROCESS_ROWS[0]!, label: `bulk ${o.bulk.mib} MiB into wc -c` };
  // mssh-tui has a column when it was measured (metric prompt only).
  const tuiMeasured = rec.results.some((r) => r.path === TUI_PATH);
  const procCols = [
    ...paths.map((p): [string, string] => [PATH_LABELS[p], p]),
    ...(tuiMeasured ? [['mssh-tui', TUI_PATH] as [string, string]] : []),
  ];
  const procRatios = [
    ...(['mssh-ssh', 'mssh-proxy'] as const)
      .filter((p) => paths.includes(p) && paths.includes('jump'))
      .map((p): [string, string, string] => [`${p === 'mssh-ssh' ? 'ssh' : 'proxy'}/jump`, p, 'jump']),
    ...(tuiMeasured && paths.includes('jump') ? [['tui/jump', TUI_PATH, 'jump'] as [string, string, string]] : []),
  ];
  const inprocRows = INPROC_ROWS.map((r) =>
    r.metric === 'conc_ok'
      ? { ...r, label: r.label.replace('sessions up', `sessions up of ${o.concurrency.sessions}`) }
      : r,
  );
  const t1 = table(rec, [bulkLabel, ...PROCESS_ROWS.slice(1)], procCols, procRatios);
  const t2 = table(
    rec,
    inprocRows,
    [
      ['OpenSSH jump', 'jump'],
      ['mssh', 'mssh'],
    ],
    env.mssh ? [['mssh/jump', 'mssh', 'jump']] : [],
  );
  const t3 = table(
    rec,
    FLEET_ROWS.map((r) => (r.metric === 'fleet_bulk_mbps' ? { ...r, label: `bulk ${o.fleet.mib} MiB into wc -c` } : r)),
    [
      ['direct (holding relay)', 'direct'],
      ['forwarded (A -> B)', 'forwarded'],
    ],
    [['forwarded/direct', 'forwarded', 'direct']],
  );
  const t4 = table(
    rec,
    OPENSSH_ROWS,
    [
      ['node -e 0', 'node -e 0'],
      ['mssh proxy', 'mssh proxy'],
      ['known-hosts openssh', 'known-hosts openssh'],
    ],
    [
      ['proxy/node', 'mssh proxy', 'node -e 0'],
      ['known-hosts/node', 'known-hosts openssh', 'node -e 0'],
    ],
  );
  const t5 = table(
    rec,
    ANSIBLE_ROWS.map((r) =>
      r.metric === 'ansible_ping_s' ? { ...r, label: `${r.label} (${o.openssh.ansibleHosts} hosts)` } : r,
    ),
    [
      ['direct ssh', 'direct'],
      ['ssh + mssh config', 'ssh+mssh config'],
    ],
    [['mssh/direct', 'ssh+mssh config', 'direct']],
  );
  const wanRatios = (['mssh-ssh', 'mssh-proxy'] as const)
    .filter((p) => wanPaths.includes(p) && wanPaths.includes('jump'))
    .map((p): [string, string, string] => [`${p === 'mssh-ssh' ? 'ssh' : 'proxy'}/jump`, p, 'jump']);
  const wanTables = has('wan')
    ? o.wan.conditions.map((c) => {
        const variant = conditionLabel(c);
        const rows: Row[] = WAN_METRICS.map((m) => ({
          metric: m.metric,
          variant,
          label:
            m.metric === 'wan_bulk_mbps'
              ? `bulk ${o.wan.mib} MiB, 1 session`
              : m.metric === 'wan_bulk_parallel_mbps'
                ? `bulk, ${o.wan.parallel} sessions at once`
                : m.label,
        }));
        const t = table(
          rec,
          rows,
          wanPaths.map((p): [string, string] => [PATH_LABELS[p], p]),
          wanRatios,
        );
        return t ? [`WAN, ${variant} one-way on each leg (both legs of every path):`, '', t, ''] : [];
      })
    : [];
  const failed = rec.results.filter((r) => !r.ok);
  const heading =
    `mssh bench, ${o.quick ? 'quick' : 'full'} run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
    `${machine.cpus} x ${machine.cpu}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, ${machine.openssh}, ${machine.postgres}`;
  const gitLine = `Commit ${git.commit}${git.dirty.length ? ` plus uncommitted changes to ${git.dirty.length} program file(s): ${git.dirty.slice(0, 5).join(', ')}${git.dirty.length > 5 ? ', ...' : ''}` : ' (clean tree)'}.`;
  const text = [
    heading,
    gitLine,
    '',
    ...(t1 ? ['Client processes (as a user runs them):', '', t1, ''] : []),
    ...(t2 ? ['In-process ssh2 clients (many sessions, tight loops):', '', t2, ''] : []),
    ...(t3 ? ['Relay fleet, 3 relays on one Postgres (in-process ssh2 clients):', '', t3, ''] : []),
    ...(t4 ? ['Helpers OpenSSH starts per connection (mssh config ssh), cold:', '', t4, ''] : []),
    ...(t5 ? ['OpenSSH-driven tools through mssh config ssh:', '', t5, ''] : []),
    ...wanTables.flat(),
    ...(env.mssh ? [] : [`mssh paths not measured: ${env.msshProblem}`, '']),
    ...(failed.length
      ? [
          'Failures (a value marked ! is partial):',
          ...failed.map(
            (r) => `- ${r.metric}${r.variant ? ` [${r.variant}]` : ''} ${r.path}: ${r.error ?? 'incomplete'}`,
          ),
          '',
        ]
      : []),
    `JSON lines: ${file.slice(ROOT.length + 1)}`,
  ].join('\n');
  writeFileSync(file.replace(/\.jsonl$/, '.md'), text + '\n');
  process.stdout.write(`\n${text}\n`);
  process.exitCode = failed.length ? 1 : 0;
}

main()
  .catch((e: Error) => {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanup();
    // Lingering sockets of in-process clients must not keep the process alive.
    setTimeout(() => process.exit(), 200).unref();
  });
