/**
 * Issue 2: enrolment refusals, relay restart and agent death, and the host key promise (a changed key on
 * the target is a hard error naming both fingerprints).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { fixtures } from './fixtures/inject.js';
import {
  startRelay,
  startAgent,
  loginUser,
  stopAll,
  enrollToken,
  agentEnroll,
  run,
  BIN,
  type Relay,
  type User,
} from './fixtures/stack.js';
import { adminSession, openTunnel } from './fixtures/tunnel-client.js';
import { startSshd } from './fixtures/sshd.js';
import { waitFor } from './fixtures/net.js';

afterAll(stopAll);

describe('enrolment refusals (Postgres)', () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay('postgres');
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('a reused enrolment token is refused', async () => {
    const token = await enrollToken(relay, 'once');
    const a = await agentEnroll(relay, 'once', token, mkdtempSync(join(fixtures().root, 'ag-')));
    expect(a.code).toBe(0);
    const b = await agentEnroll(relay, 'once', token, mkdtempSync(join(fixtures().root, 'ag-')));
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/RLY_ERR_ENROLL_TOKEN_INVALID|used|expired/i);
    expect(b.stderr).toMatch(/mssh-relay agent enroll|new token/i);
  });

  it('an expired enrolment token is refused', async () => {
    const token = await enrollToken(relay, 'late');
    const c = new pg.Client(relay.databaseUrl);
    await c.connect();
    await c.query(`UPDATE enroll_tokens SET expires_at = now() - interval '1 minute' WHERE name = 'late'`);
    await c.end();
    const r = await agentEnroll(relay, 'late', token, mkdtempSync(join(fixtures().root, 'ag-')));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/RLY_ERR_ENROLL_TOKEN_INVALID|expired/i);
  });

  it('a second agent claiming an enrolled name is refused', async () => {
    const t1 = await enrollToken(relay, 'dup');
    const t2 = await enrollToken(relay, 'dup').catch(() => null);
    expect((await agentEnroll(relay, 'dup', t1, mkdtempSync(join(fixtures().root, 'ag-')))).code).toBe(0);
    if (t2) {
      const r = await agentEnroll(relay, 'dup', t2, mkdtempSync(join(fixtures().root, 'ag-')));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/RLY_ERR_NAME_TAKEN|already/i);
    }
    // Either way, asking for a token for a taken name is refused or unusable: prove a fresh one cannot enrol.
    const t3 = await enrollToken(relay, 'dup').catch(() => null);
    if (t3) expect((await agentEnroll(relay, 'dup', t3, mkdtempSync(join(fixtures().root, 'ag-')))).code).not.toBe(0);
  });

  it('a token issued for one name cannot enrol another', async () => {
    const token = await enrollToken(relay, 'right');
    const r = await agentEnroll(relay, 'wrong', token, mkdtempSync(join(fixtures().root, 'ag-')));
    expect(r.code).not.toBe(0);
  });

  it('an agent with an unknown key is refused and says so in its log', async () => {
    const agent = await startAgent(relay, 'ghost', { start: false });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(agent.stateDir, 'identity.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    if (existsSync(join(agent.stateDir, 'identity.pub'))) rmSync(join(agent.stateDir, 'identity.pub'));
    const p = run(BIN.agent, ['run', '--state-dir', agent.stateDir]);
    const t = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
    const code = await p.exited;
    clearTimeout(t);
    // The agent's own words in the failure message: it once exited 1 here, under the full suite's load.
    expect(code, `mssh-agent output:\n${p.out}\n${p.err}`).toBe(78);
    expect(p.err + p.out).toMatch(/RLY_ERR_UNKNOWN_AGENT_KEY/);
    expect(p.err + p.out).toMatch(/enrol/i);
  });
});

describe('relay restart and agent death (PGlite)', () => {
  let relay: Relay;
  let user: User;
  beforeAll(async () => {
    relay = await startRelay('pglite');
    user = await loginUser(relay);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('after a relay restart the agent is reachable again within 5 s of the relay coming back', async () => {
    const f = fixtures();
    await startAgent(relay, 'phoenix');
    await relay.proc.stop();
    await new Promise((r) => setTimeout(r, 2_000)); // the agent retries while the relay is down
    await relay.restart();
    const back = Date.now();
    const { h2, token } = await adminSession(relay);
    await waitFor(
      async () => {
        const s = await openTunnel(h2, token, 'phoenix').catch(() => null);
        s?.destroy();
        return s !== null;
      },
      5_000,
      'the agent to be reachable after the relay restart',
      100,
    );
    console.log(`[figure] agent reachable ${Date.now() - back} ms after the relay was back`);
    h2.close();
    const r = await user.mssh(['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@phoenix`, '--', 'echo', 'back']);
    expect(r.stdout).toBe('back\n');
  });

  it('killing the agent makes `mssh ssh` fail within 5 s with the offline error', async () => {
    const f = fixtures();
    const agent = await startAgent(relay, 'mortal');
    agent.proc.child.kill('SIGKILL');
    await agent.proc.exited;
    const t0 = Date.now();
    const r = await user.mssh(['ssh', '-i', f.sshd.clientKey, `${f.sshd.user}@mortal`, '--', 'true'], {
      timeoutMs: 10_000,
    });
    const ms = Date.now() - t0;
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/offline|not connected/i);
    expect(ms).toBeLessThan(5_000);
  });
});

describe('host key changed on the target', () => {
  let relay: Relay;
  let user: User;
  beforeAll(async () => {
    relay = await startRelay('pglite');
    user = await loginUser(relay);
  });
  afterAll(async () => {
    await relay?.proc.stop();
  });

  it('mssh ssh refuses with both fingerprints and the fix, even after the relay attests the new key', async () => {
    const f = fixtures();
    const dir = mkdtempSync(join(f.root, 'sshd2-'));
    let sshd = await startSshd({ dir });
    const agent = await startAgent(relay, 'moving', { target: `127.0.0.1:${sshd.port}` });
    const args = ['ssh', '-i', join(dir, 'client_ed25519'), `${f.sshd.user}@moving`, '--', 'echo', 'ok'];
    expect((await user.mssh(args)).stdout).toBe('ok\n');

    const port = sshd.port;
    const oldKeys = sshd.hostKeys;
    await sshd.stop();
    sshd = await startSshd({ dir, port });
    expect(sshd.hostKeys).not.toEqual(oldKeys);
    const r = await user.mssh(args);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    const fps = r.stderr.match(/SHA256:[A-Za-z0-9+/]{43}/g) ?? [];
    expect(new Set(fps).size).toBeGreaterThanOrEqual(2);
    expect(r.stderr).toContain('mssh known-hosts forget moving');

    // The agent reconnects and attests the new keys: the pinned key still wins.
    await agent.proc.stop();
    await agent.start();
    const again = await user.mssh(args);
    expect(again.code).toBe(255);
    expect(again.stdout).toBe('');

    // After forgetting the old key, the attested new key is accepted without a prompt.
    expect((await user.mssh(['known-hosts', 'forget', 'moving'])).code).toBe(0);
    expect((await user.mssh(args)).stdout).toBe('ok\n');
    await sshd.stop();
  });
});
