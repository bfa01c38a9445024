/**
 * The WAN mode's routes (issue 22): the same programs as the rest of the benchmark, with a WAN proxy
 * (wan-proxy.ts, one child process for all legs) on both legs of each path:
 *
 *   jump:      ssh -J ──[leg: client]──> bastion sshd <──[leg: tunnel]── ssh -N -R WANRPORT:TPORT ──> target sshd
 *   mssh-ssh:  mssh ssh ──[leg: client]──> relay <──[leg: agent]── mssh-agent bench-wan ──> target sshd
 *
 * Each path gets a second edge of its own that reaches the middle through its proxy: an `ssh -R` with its
 * own remote port, supervised like the first one, and an agent `bench-wan` enrolled through the agent-leg
 * proxy (its agent.json holds the proxy's URL; the relay's certificate is pinned by fingerprint, so a
 * different port is no problem). The user is logged in a second time through the client-leg proxy. The
 * long-lived links cross their leg like the sessions do: a channel or stream opened to the target crosses
 * both legs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@mssh/test-fixtures/net';
import { startAgent, loginUser, type Agent } from '@mssh/test-fixtures/stack';
import { onCleanup } from './cleanup.js';
import { TARGET_HOST, type BenchEnv } from './env.js';
import { writeSshConfig, startReverseTunnel, type ReverseTunnel } from './openssh.js';
import { forkWanProxy, type WanProxy } from './wan-proxy.js';
import { watch } from './watchdog.js';

export const WAN_HOST = 'bench-wan';

export interface WanEnv {
  proxy: WanProxy;
  /** The benchmark's environment with every path going through the proxies (for commandFor). */
  env: BenchEnv;
  tunnel: ReverseTunnel;
  agent?: Agent;
  /** Listening ports of the legs' proxies, by leg. */
  legs: Record<string, number>;
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

export async function setUpWan(env: BenchEnv): Promise<WanEnv> {
  log('starting the WAN proxy process');
  const proxy = await forkWanProxy();
  onCleanup('stop WAN proxy', () => proxy.stop());
  // Set up through a plain link; each condition is set before it is measured.
  await proxy.setCondition({ delayMs: 0, rateBytesPerSec: 0 });

  const legs: Record<string, number> = {
    'jump client -> bastion': await proxy.listen(env.bastion.port),
    'ssh -R -> bastion': await proxy.listen(env.bastion.port),
  };
  const rport = await freePort();
  const knownHosts = [
    { pattern: `[127.0.0.1]:${legs['jump client -> bastion']}`, keys: env.bastion.hostKeys },
    { pattern: `[127.0.0.1]:${legs['ssh -R -> bastion']}`, keys: env.bastion.hostKeys },
    { pattern: `[127.0.0.1]:${rport}`, keys: env.target.hostKeys },
    { pattern: WAN_HOST, keys: env.target.hostKeys },
    { pattern: TARGET_HOST, keys: env.target.hostKeys },
  ];
  // Two ssh configs: the bastion alias of each names its own leg's proxy port.
  const config = (dir: string, bastionPort: number) => {
    mkdirSync(dir, { recursive: true });
    return writeSshConfig(dir, { identity: env.key.path, user: env.user, bastionPort, knownHosts });
  };
  const clientConfig = config(join(env.root, 'wan-client'), legs['jump client -> bastion']!);
  const tunnelConfig = config(join(env.root, 'wan-tunnel'), legs['ssh -R -> bastion']!);
  log('opening the WAN reverse tunnel (ssh -N -R through its proxy) to the bastion');
  const tunnel = startReverseTunnel(tunnelConfig, [{ remotePort: rport, localPort: env.target.port }]);
  onCleanup('stop WAN reverse tunnel', () => tunnel.stop());
  await tunnel.waitUp(60_000);

  const wanEnv: BenchEnv = { ...env, sshConfig: clientConfig, rport, targetHost: WAN_HOST };
  const out: WanEnv = { proxy, env: wanEnv, tunnel, legs };
  const m = env.mssh;
  if (m) {
    legs['mssh client -> relay'] = await proxy.listen(m.relay.port);
    legs['agent -> relay'] = await proxy.listen(m.relay.port);
    log(`enrolling agent ${WAN_HOST} and logging in through the WAN proxies`);
    const agent = await startAgent({ ...m.relay, url: `https://127.0.0.1:${legs['agent -> relay']}` }, WAN_HOST, {
      target: `127.0.0.1:${env.target.port}`,
    });
    watch(agent.proc.child);
    onCleanup(`stop agent ${WAN_HOST}`, async () => {
      await agent.proc.stop('SIGTERM', 10_000);
    });
    const user = await loginUser({ ...m.relay, url: `https://127.0.0.1:${legs['mssh client -> relay']}` });
    wanEnv.mssh = { ...m, user, agent };
    out.agent = agent;
  }
  return out;
}
