/**
 * Issue 20 item 4, Prometheus metrics, as an operator sees them: a real relay (on Postgres, so the pool
 * figures are real) and a real agent in front of the fixture sshd, both with --metrics-listen; real
 * sessions through `mssh ssh`; the endpoints scraped over HTTP and the figures checked to move. Every
 * scrape is also put through Debian's `promtool check metrics`, and the alert rules of
 * docs/operations.md through `promtool check rules`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fixtures } from './fixtures/inject.js';
import { freePort, waitFor } from './fixtures/net.js';
import { promtoolCheckMetrics, promtoolCheckRules, promtoolTestRules } from './fixtures/promtool.js';
import { startPrivatePostgres, type PrivatePostgres } from './fixtures/private-postgres.js';
import {
  BIN,
  exec,
  loginUser,
  run,
  sshArgs,
  startAgent,
  startRelay,
  stopAll,
  type Agent,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { login, openTunnel, relaySession } from './fixtures/tunnel-client.js';

afterAll(stopAll);

/** One scrape: the raw text and its samples by series (`name{labels}` exactly as exposed). */
interface Scrape {
  text: string;
  value(series: string): number;
}

async function scrape(port: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const text = await res.text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    samples.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return {
    text,
    value(series: string): number {
      const v = samples.get(series);
      if (v === undefined) throw new Error(`no series ${series} in the scrape`);
      return v;
    },
  };
}

/** Scrape until pred holds (bounded: 15 s, 100 ms apart). */
async function scrapeUntil(port: number, pred: (s: Scrape) => boolean, what: string): Promise<Scrape> {
  return waitFor(
    async () => {
      const s = await scrape(port);
      return pred(s) ? s : null;
    },
    15_000,
    what,
    100,
  );
}

const BYTES = 200_000;

/** `promtool test rules` for the alert rules of docs/operations.md (written beside them as mssh-rules.yml). */
const RULE_TESTS = `rule_files: [mssh-rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'up{job="mssh-relay",instance="r1:9464"}'
        values: '0x20'
      - series: 'up{job="mssh-relay",instance="r2:9464"}'
        values: '1x20'
      - series: 'mssh_agent_reconnects_total{cause="lost",instance="a1:9465"}'
        values: '0+1x80'
      - series: 'mssh_agent_reconnects_total{cause="moved",instance="a2:9465"}'
        values: '0+1x80'
      - series: 'mssh_agent_reconnects_total{cause="lost",instance="a3:9465"}'
        values: '0 0 1x78'
      - series: 'mssh_relay_audit_commit_failures_total{instance="r1:9464"}'
        values: '0+1x40'
      - series: 'mssh_relay_audit_commit_failures_total{instance="r2:9464"}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 30s
        alertname: MsshRelayDown
      - eval_time: 2m
        alertname: MsshRelayDown
        exp_alerts:
          - exp_labels: { severity: critical, job: mssh-relay, instance: 'r1:9464' }
            exp_annotations:
              summary: 'mssh relay r1:9464 is down'
              description: "Prometheus cannot scrape the relay's metrics for 1 minute: the relay process is down or unreachable."
      - eval_time: 10m
        alertname: MsshAgentFlapping
        exp_alerts:
          - exp_labels: { severity: warning, cause: lost, instance: 'a1:9465' }
            exp_annotations:
              summary: 'mssh agent a1:9465 lost its relay link more than 3 times in 15 minutes'
              description: 'Its network or the relay drops the link; sessions to this machine break. Check the agent log (disconnected from relay HOST:PORT: REASON).'
      - eval_time: 1m
        alertname: MsshAuditFailing
      - eval_time: 5m
        alertname: MsshAuditFailing
        exp_alerts:
          - exp_labels: { severity: critical, instance: 'r1:9464' }
            exp_annotations:
              summary: 'mssh relay r1:9464 cannot write its audit trail'
              description: 'Audit commits have failed for 2 minutes; writes queue up (mssh_relay_audit_queue_depth) and new sessions are refused RLY_ERR_DATABASE_UNAVAILABLE until the database answers.'
`;

describe('metrics endpoints of relay and agent', () => {
  let relay: Relay;
  let agent: Agent;
  let user: User;
  let relayPort: number;
  let agentPort: number;

  beforeAll(async () => {
    relayPort = await freePort();
    agentPort = await freePort();
    // --login-attempts 2: the last test reaches the failed-login block in a few attempts.
    relay = await startRelay('postgres', ['--metrics-listen', `127.0.0.1:${relayPort}`, '--login-attempts', '2']);
    agent = await startAgent(relay, 'metrics-box', { args: ['--metrics-listen', `127.0.0.1:${agentPort}`] });
    user = await loginUser(relay);
  });
  afterAll(async () => {
    await agent?.proc.stop();
    await relay?.proc.stop();
  });

  it('the relay prints where its metrics are; both answer GET /metrics only (404 otherwise)', async () => {
    expect(relay.proc.out).toContain(`Metrics on http://127.0.0.1:${relayPort}/metrics`);
    for (const port of [relayPort, agentPort]) {
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
    }
    // Never the public port: the relay's own HTTPS port has no /metrics.
    const h2 = await relaySession(relay);
    try {
      const req = h2.request({ ':method': 'GET', ':path': '/metrics' });
      const status = await new Promise<number>((res) => req.once('response', (h) => res(Number(h[':status']))));
      req.close();
      expect(status).toBe(404);
    } finally {
      h2.close();
    }
  });

  it('a real session moves the relay and agent figures: started, ended, bytes each way, set-up time, audit commits', async () => {
    const r0 = await scrapeUntil(
      relayPort,
      (s) => s.value('mssh_relay_agent_links{state="online"}') === 1,
      'agent online',
    );
    const a0 = await scrapeUntil(agentPort, (s) => s.value('mssh_agent_links{state="up"}') === 1, 'agent link up');
    expect(r0.value('mssh_relay_sessions_active')).toBe(0);
    expect(a0.value('mssh_agent_link_ups_total')).toBe(1);

    const r = await user.mssh([...sshArgs('metrics-box'), '--', 'head', '-c', String(BYTES), '/dev/zero'], {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(BYTES);

    // The session's end reaches the relay's counters as the splice finishes: wait for it, bounded.
    const r1 = await scrapeUntil(
      relayPort,
      (s) =>
        s.value('mssh_relay_sessions_ended_total{reason="client_closed"}') +
          s.value('mssh_relay_sessions_ended_total{reason="agent_closed"}') >=
        1,
      'the session end',
    );
    expect(r1.value('mssh_relay_sessions_started_total{via="https"}')).toBe(
      r0.value('mssh_relay_sessions_started_total{via="https"}') + 1,
    );
    expect(r1.value('mssh_relay_session_setup_seconds_count{via="https"}')).toBe(
      r0.value('mssh_relay_session_setup_seconds_count{via="https"}') + 1,
    );
    expect(r1.value('mssh_relay_session_setup_seconds_sum{via="https"}')).toBeGreaterThan(0);
    const toClient = r1.value('mssh_relay_session_bytes_total{direction="to_client"}');
    const fromClient = r1.value('mssh_relay_session_bytes_total{direction="from_client"}');
    expect(toClient - r0.value('mssh_relay_session_bytes_total{direction="to_client"}')).toBeGreaterThan(BYTES);
    expect(fromClient - r0.value('mssh_relay_session_bytes_total{direction="from_client"}')).toBeGreaterThan(1000);
    expect(r1.value('mssh_relay_audit_commit_seconds_count{result="ok"}')).toBeGreaterThan(
      r0.value('mssh_relay_audit_commit_seconds_count{result="ok"}'),
    );
    expect(r1.value('mssh_relay_audit_commit_failures_total')).toBe(0);

    const a1 = await scrapeUntil(agentPort, (s) => s.value('mssh_agent_sessions_active') === 0, 'agent session end');
    expect(a1.value('mssh_agent_sessions_total{result="ok"}')).toBe(
      a0.value('mssh_agent_sessions_total{result="ok"}') + 1,
    );
    // The agent moved what the relay moved (the same session, seen from the other end of the link).
    const toRelay = a1.value('mssh_agent_session_bytes_total{direction="to_relay"}');
    expect(toRelay - a0.value('mssh_agent_session_bytes_total{direction="to_relay"}')).toBeGreaterThan(BYTES);
    expect(toRelay).toBe(toClient);
    expect(a1.value('mssh_agent_session_bytes_total{direction="from_relay"}')).toBe(fromClient);
    console.log(
      `metrics after one ${BYTES}-byte session: relay to_client ${toClient}, from_client ${fromClient}, ` +
        `setup ${r1.value('mssh_relay_session_setup_seconds_sum{via="https"}').toFixed(4)} s; agent to_relay ${toRelay}`,
    );
  });

  it('a running session shows in the active gauges of both, and leaves them when it ends', async () => {
    const running = user.mssh([...sshArgs('metrics-box'), '--', 'sleep', '3'], { timeoutMs: 30_000 });
    const during = await scrapeUntil(relayPort, (s) => s.value('mssh_relay_sessions_active') === 1, 'a live session');
    expect(during.value('mssh_relay_agent_links{state="online"}')).toBe(1);
    await scrapeUntil(agentPort, (s) => s.value('mssh_agent_sessions_active') === 1, 'a live agent session');
    expect((await running).code).toBe(0);
    await scrapeUntil(relayPort, (s) => s.value('mssh_relay_sessions_active') === 0, 'no live session');
    await scrapeUntil(agentPort, (s) => s.value('mssh_agent_sessions_active') === 0, 'no live agent session');
  });

  it('a refused session counts under its error code, a failed login under failed', async () => {
    const before = await scrape(relayPort);
    const h2 = await relaySession(relay);
    try {
      await expect(login(h2, 'admin', 'not-the-password')).rejects.toThrow(/401.*AUTH_ERR_BAD_CREDENTIALS/);
      const token = await login(h2, 'admin', 'admin-password-for-tests');
      // A tunnel to a machine nobody enrolled: the session gate refuses it (`mssh ssh` asks the host list
      // first and stops before the gate, so the tunnel is opened here as the client would).
      await expect(openTunnel(h2, token, 'no-such-box')).rejects.toMatchObject({
        status: 404,
        body: { code: 'RLY_ERR_UNKNOWN_HOST' },
      });
    } finally {
      h2.close();
    }
    const after = await scrape(relayPort);
    expect(after.value('mssh_relay_sessions_denied_total{code="RLY_ERR_UNKNOWN_HOST"}')).toBe(
      before.value('mssh_relay_sessions_denied_total{code="RLY_ERR_UNKNOWN_HOST"}') + 1,
    );
    expect(after.value('mssh_relay_logins_total{result="failed"}')).toBe(
      before.value('mssh_relay_logins_total{result="failed"}') + 1,
    );
    expect(after.value('mssh_relay_logins_total{result="ok"}')).toBe(
      before.value('mssh_relay_logins_total{result="ok"}') + 1,
    );
    // Bounded labels: no user or host name anywhere in the scrape.
    expect(after.text).not.toMatch(/no-such-box|metrics-box|"admin"/);
  });

  it('promtool check metrics accepts a real scrape of each; promtool check rules accepts the docs alert rules', async () => {
    for (const port of [relayPort, agentPort]) {
      const s = await scrape(port);
      const check = await promtoolCheckMetrics(s.text);
      expect(check.output).toBe('');
      expect(check.code).toBe(0);
    }
    const doc = readFileSync(resolve(import.meta.dirname, '../docs/operations.md'), 'utf8');
    const m = /<!-- mssh-rules-begin -->\s*```yaml\n([\s\S]*?)```\s*<!-- mssh-rules-end -->/.exec(doc);
    expect(m, 'docs/operations.md has the rules block between its markers').not.toBeNull();
    const file = join(mkdtempSync(join(fixtures().root, 'rules-')), 'mssh-rules.yml');
    writeFileSync(file, m![1]!);
    const rules = await promtoolCheckRules(file);
    expect(rules.output).toMatch(/SUCCESS: 3 rules found/);
    expect(rules.code).toBe(0);
    // And they fire when they should, and only then (made-up series, 15 s apart).
    const tests = join(dirname(file), 'mssh-rules.test.yml');
    writeFileSync(tests, RULE_TESTS);
    const tested = await promtoolTestRules(tests);
    expect(tested.output).toMatch(/SUCCESS/);
    expect(tested.code).toBe(0);
  });

  it('a metrics port already taken stops the start: RLY_CLI_ERR_LISTEN (relay), AGT_ERR_METRICS_LISTEN (agent)', async () => {
    const r = await exec(
      BIN.relay,
      [
        'serve',
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--ssh-listen',
        'off',
        '--data-dir',
        mkdtempSync(join(fixtures().root, 'relay-taken-')),
        '--database-url',
        relay.databaseUrl!,
        '--metrics-listen',
        `127.0.0.1:${relayPort}`,
      ],
      {
        env: { ...process.env, DATABASE_URL: '', MSSH_BOOTSTRAP_PASSWORD: 'admin-password-for-tests' },
        timeoutMs: 60_000,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot listen for metrics on 127.0.0.1:${relayPort}: the address is already in use`);
    expect(r.stderr).toContain('[RLY_CLI_ERR_LISTEN]');
    expect(r.stderr).toContain('--metrics-listen');

    const second = await startAgent(relay, 'metrics-box-2', { start: false });
    const p = run(BIN.agent, ['run', '--state-dir', second.stateDir, '--metrics-listen', `127.0.0.1:${agentPort}`]);
    const killer = setTimeout(() => p.child.kill('SIGKILL'), 30_000);
    const code = await p.exited;
    clearTimeout(killer);
    expect(code).toBe(1);
    expect(p.err).toContain(`cannot listen for metrics on 127.0.0.1:${agentPort}: the address is already in use`);
    expect(p.err).toContain('[AGT_ERR_METRICS_LISTEN]');
  });

  it('a relay restart: the agent counts one lost link and one reconnect, and is up again', async () => {
    const before = await scrape(agentPort);
    // kill -9: the link is lost (a SIGTERM would drain, and the agent's reconnect would count as moved).
    await relay.proc.stop('SIGKILL');
    await relay.restart();
    const after = await scrapeUntil(
      agentPort,
      (s) =>
        s.value('mssh_agent_reconnects_total{cause="lost"}') ===
          before.value('mssh_agent_reconnects_total{cause="lost"}') + 1 &&
        s.value('mssh_agent_links{state="up"}') === 1,
      'the agent reconnected',
    );
    expect(after.value('mssh_agent_link_ups_total')).toBe(before.value('mssh_agent_link_ups_total') + 1);
    expect(after.value('mssh_agent_link_ends_total{outcome="closed"}')).toBeGreaterThan(
      before.value('mssh_agent_link_ends_total{outcome="closed"}'),
    );
    // The restarted relay counts from zero and sees the agent online again.
    await scrapeUntil(relayPort, (s) => s.value('mssh_relay_agent_links{state="online"}') === 1, 'agent online again');
    const r = await scrape(relayPort);
    expect(r.value('mssh_relay_sessions_started_total{via="https"}')).toBe(0);
    console.log(
      `agent after the relay restart: reconnects{lost} ${after.value('mssh_agent_reconnects_total{cause="lost"}')}, ` +
        `link_ups ${after.value('mssh_agent_link_ups_total')}, link_ends{closed} ${after.value('mssh_agent_link_ends_total{outcome="closed"}')}`,
    );
  });

  it('failed logins past --login-attempts are blocked RLY_ERR_RATE_LIMITED, and counted', async () => {
    const before = await scrape(relayPort);
    const h2 = await relaySession(relay);
    let blocked: Error | null = null;
    try {
      for (let i = 0; i < 10 && !blocked; i++) {
        const err = await login(h2, 'admin', `wrong-${i}`).then(
          () => new Error('a wrong password logged in'),
          (e: Error) => e,
        );
        if (/429/.test(err.message)) blocked = err;
        else expect(err.message).toMatch(/401.*AUTH_ERR_BAD_CREDENTIALS/);
      }
    } finally {
      h2.close();
    }
    expect(blocked?.message).toMatch(/429.*RLY_ERR_RATE_LIMITED/);
    const after = await scrape(relayPort);
    expect(after.value('mssh_relay_rate_limited_total{code="RLY_ERR_RATE_LIMITED"}')).toBe(
      before.value('mssh_relay_rate_limited_total{code="RLY_ERR_RATE_LIMITED"}') + 1,
    );
    expect(after.value('mssh_relay_logins_total{result="failed"}')).toBeGreaterThanOrEqual(
      before.value('mssh_relay_logins_total{result="failed"}') + 2,
    );
  });
});

describe('metrics while the database is down (private Postgres cluster)', () => {
  let pg: PrivatePostgres;
  let relay: Relay;
  let port: number;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    port = await freePort();
    relay = await startRelay('postgres', ['--metrics-listen', `127.0.0.1:${port}`], { databaseUrl: pg.url });
    await startAgent(relay, 'outage-box');
  }, 120_000);
  afterAll(async () => {
    await stopAll();
    pg?.remove();
  });

  it('audit commit failures and the queue move while it is down, and drain when it is back; the pool is seen', async () => {
    const h2 = await relaySession(relay);
    try {
      const token = await login(h2, 'admin', 'admin-password-for-tests');
      const before = await scrapeUntil(
        port,
        (s) => s.value('mssh_relay_agent_links{state="online"}') === 1 && s.value('mssh_relay_audit_queue_depth') === 0,
        'agent online, audit written',
      );
      expect(before.value('mssh_relay_audit_commit_failures_total')).toBe(0);
      expect(before.value('mssh_relay_db_pool_in_use')).toBeGreaterThanOrEqual(0);
      expect(before.value('mssh_relay_db_pool_waiting')).toBe(0);

      // A session that ends during the outage: its session.end must be written, so it stays queued and
      // the writer retries it (each retry a failed commit) until the database is back.
      const running = await openTunnel(h2, token, 'outage-box');
      await scrapeUntil(port, (s) => s.value('mssh_relay_sessions_active') === 1, 'the session running');
      pg.stop();
      running.destroy();
      await scrapeUntil(port, (s) => s.value('mssh_relay_sessions_active') === 0, 'the session ended');
      // Fail closed (here already at the token check, which reads the database, before the session gate).
      await expect(openTunnel(h2, token, 'outage-box')).rejects.toMatchObject({
        status: 503,
        body: { code: 'RLY_ERR_DATABASE_UNAVAILABLE' },
      });
      const during = await scrapeUntil(
        port,
        (s) => s.value('mssh_relay_audit_commit_failures_total') > 0 && s.value('mssh_relay_audit_queue_depth') > 0,
        'audit failures and a queue',
      );
      expect(during.value('mssh_relay_audit_commit_seconds_count{result="error"}')).toBeGreaterThan(0);
      console.log(
        `during the outage: audit failures ${during.value('mssh_relay_audit_commit_failures_total')}, ` +
          `queue ${during.value('mssh_relay_audit_queue_depth')}`,
      );

      pg.start();
      // Once the database answers, the queue drains (the retry back-off is at most 5 s).
      const back = await scrapeUntil(port, (s) => s.value('mssh_relay_audit_queue_depth') === 0, 'the queue drained');
      expect(back.value('mssh_relay_audit_commit_seconds_count{result="ok"}')).toBeGreaterThan(
        during.value('mssh_relay_audit_commit_seconds_count{result="ok"}'),
      );
    } finally {
      h2.close();
    }
  });
});
