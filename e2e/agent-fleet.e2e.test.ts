/**
 * Issue 19, the agent side of the relay fleet, with the real programs: two `mssh-relay serve` processes
 * on ONE Postgres database and ONE certificate (relay 2 serves relay 1's with --tls-cert/--tls-key), and
 * `mssh-agent run --relay URL` enrolled once on relay 1 (both relays accept it: they share the agents
 * table).
 *
 *   relay 1 killed -9       -> the agent is on relay 2 well within 2 s, no back-off wait
 *   --links 2               -> both relays hold the agent; one stopped, the other link stays as it was
 *   bad --relay / --links   -> AGT_ERR_CONFIG, exit 64, the bad value and the fix named
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, exec, run, startAgent, startRelay, stopAll, type Proc, type Relay } from './fixtures/stack.js';
import { startEchoTarget, type EchoTarget } from './fixtures/echo-target.js';
import { dropTestDatabase } from './fixtures/postgres.js';
import { fixtures } from './fixtures/inject.js';

type LogLine = { time: number; level: number; msg: string; [k: string]: unknown };

/** The agent's JSON log lines (stderr) so far. */
function logLines(p: Proc): LogLine[] {
  return p.err
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

const count = (text: string, re: RegExp): number => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

describe('mssh-agent run with the relays of one fleet', () => {
  let r1: Relay;
  let r2: Relay;
  let echo: EchoTarget;

  beforeAll(async () => {
    echo = await startEchoTarget(fixtures().sshd.port, 10);
    r1 = await startRelay('postgres');
    const tls = join(r1.dataDir, 'tls');
    r2 = await startRelay('postgres', ['--tls-cert', join(tls, 'cert.pem'), '--tls-key', join(tls, 'key.pem')], {
      databaseUrl: r1.databaseUrl,
    });
    expect(r2.fingerprint).toBe(r1.fingerprint);
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    await echo?.close();
    if (r1?.databaseUrl) await dropTestDatabase(r1.databaseUrl);
  });

  /** Enrol `name` on relay 1 and run it with relay 2 as a further relay of the fleet. */
  async function fleetAgent(name: string, extra: string[] = []): Promise<Proc> {
    const a = await startAgent(r1, name, { target: `127.0.0.1:${echo.port}`, start: false });
    const p = run(BIN.agent, ['run', '--state-dir', a.stateDir, '--log-level', 'info', '--relay', r2.url, ...extra]);
    await p.waitOutput(new RegExp(`connected to relay 127\\.0\\.0\\.1:${r1.port} as ${name}`), 20_000, 'err');
    return p;
  }

  it('relay 1 killed -9: the agent is welcomed by relay 2 well within 2 s, without a back-off wait', async () => {
    const agent = await fleetAgent('hopper');
    await r1.proc.waitOutput(/agent hopper connected/, 10_000);
    const killedAt = Date.now();
    await r1.proc.stop('SIGKILL');
    await agent.waitOutput(/failed over from relay/, 10_000, 'err');
    await r2.proc.waitOutput(/agent hopper connected/, 10_000);
    const over = logLines(agent).find((l) => /failed over from relay/.test(l.msg))!;
    expect(over.msg).toMatch(
      new RegExp(
        `^connected to relay 127\\.0\\.0\\.1:${r2.port} as hopper: failed over from relay 127\\.0\\.0\\.1:${r1.port} \\(`,
      ),
    );
    expect(over.time - killedAt).toBeLessThan(2_000);
    expect(over.backoffAttempts).toBe(0);
    // No "retry in N ms": the drop went straight to the next relay.
    expect(logLines(agent).filter((l) => /^retry in/.test(l.msg))).toEqual([]);
    await agent.stop();
    await r1.restart();
  });

  it('--links 2: both relays hold the agent; stopping one leaves the other link up, never reconnected', async () => {
    const agent = await fleetAgent('twin', ['--links', '2']);
    await r1.proc.waitOutput(/agent twin connected/, 10_000);
    await r2.proc.waitOutput(/agent twin connected/, 10_000);
    await agent.waitOutput(
      new RegExp(`connected to relay 127\\.0\\.0\\.1:${r2.port} as twin \\(link 2 of 2\\)`),
      10_000,
    );

    await r1.proc.stop('SIGKILL');
    // The link that was on relay 1 tries relay 2, which another link holds: declined, not fought over.
    await agent.waitOutput(
      new RegExp(`relay 127\\.0\\.0\\.1:${r2.port} already holds another link of this agent`),
      10_000,
    );
    await r2.proc.waitOutput(/agent twin already holds a link to this relay; dropping the extra one/, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const relay2 = r2.proc.out + r2.proc.err;
    expect(count(relay2, /agent twin connected/)).toBe(1);
    expect(count(relay2, /agent twin disconnected/)).toBe(0);
    expect(count(relay2, /agent twin reconnected/)).toBe(0);
    expect(count(agent.err, new RegExp(`connected to relay 127\\.0\\.0\\.1:${r2.port} as twin`))).toBe(1);
    expect(count(agent.err, new RegExp(`disconnected from relay 127\\.0\\.0\\.1:${r2.port}`))).toBe(0);
    await agent.stop();
    await r1.restart();
  });

  it('bad --relay, MSSH_RELAYS and --links values: AGT_ERR_CONFIG, exit 64, each bad value and its fix', async () => {
    const stateDir = mkdtempSync(join(fixtures().root, 'agent-badrelay-'));
    const flags = await exec(BIN.agent, [
      'run',
      '--state-dir',
      stateDir,
      '--relay',
      'http://relay2.example:8443',
      '--relay',
      'https://relay3.example:8443/agents',
      '--links',
      '9',
    ]);
    expect(flags.code).toBe(64);
    expect(flags.stderr).toBe(
      'mssh-agent: --relay must be an https URL of a relay of the same fleet, such as https://relay2.example:8443, not "http://relay2.example:8443" [AGT_ERR_CONFIG]\n' +
        '--relay: "https://relay3.example:8443/agents" has a path, query or fragment; give the relay\'s base URL, https://relay3.example:8443 (agents dial its host and port)\n' +
        '--links must be a whole number from 1 to 8 (links held at once, each to a different relay), not "9"\n' +
        'See mssh-agent --help.\n',
    );
    const env = await exec(BIN.agent, ['run', '--state-dir', stateDir], {
      env: { ...process.env, MSSH_RELAYS: 'https://relay2.example:8443,relay3.example', MSSH_LINKS: '0' },
    });
    expect(env.code).toBe(64);
    expect(env.stderr).toContain(
      'MSSH_RELAYS must list https URLs of relays of the same fleet, comma-separated (e.g. https://relay1.example:8443,https://relay2.example:8443); "relay3.example" is not one',
    );
    expect(env.stderr).toContain('MSSH_LINKS must be a whole number from 1 to 8');
    expect(env.stderr).toContain('[AGT_ERR_CONFIG]');
  });
});
