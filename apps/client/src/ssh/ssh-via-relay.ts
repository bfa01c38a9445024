/**
 * `ssh` to an enrolled machine through an open relay connection: host key rule (known_hosts, else the
 * relay's attested keys), tunnel, embedded SSH session. Shared by `mssh ssh` and the full-screen picker.
 */
import { createHostKeyCheck } from '../known-hosts/host-key-policy.js';
import type { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { runSsh, type RunSshOptions } from './run-ssh.js';
import { preloadSsh2 } from './ssh2-lazy.js';

/** The steps of a connection, in order, for progress reports (`mssh ssh -v`, the status line). */
export type ConnectStep = 'host-keys' | 'tunnel' | 'handshake' | 'authenticating';

export type SshViaRelayOptions = Omit<RunSshOptions, 'sock' | 'hostKey'> & {
  client: RelayClient;
  knownHosts: KnownHostsFile;
  /** Told when each step starts (`authenticating`: the key exchange is done and the host key accepted). */
  progress?: (step: ConnectStep) => void;
};

import { assertHostName } from './openssh-names.js';

export { assertHostName };

export async function sshViaRelay(opts: SshViaRelayOptions): Promise<number> {
  const { client, knownHosts, host, progress, ...rest } = opts;
  assertHostName(host);
  preloadSsh2(); // loads while the relay round trips below are in flight
  // The relay's attested keys are needed (and fetched) only when nothing is pinned for this name yet.
  const pinned = knownHosts.lookup(host).length > 0;
  if (!pinned) progress?.('host-keys');
  const attested = pinned ? [] : (await client.getHost(host)).hostKeys;
  const hostKey = createHostKeyCheck({
    host,
    knownHosts,
    attested,
    refresh: async () => (await client.refreshHostKeys(host)).hostKeys,
  });
  progress?.('tunnel');
  const tunnel = await client.openTunnel(host);
  progress?.('handshake');
  const onHandshake = rest.onHandshake;
  return runSsh({
    ...rest,
    host,
    sock: tunnel.stream,
    hostKey,
    lostReason: () => client.endedByRelay(tunnel, host),
    onHandshake: () => {
      progress?.('authenticating');
      onHandshake?.();
    },
  });
}
