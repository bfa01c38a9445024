/**
 * `ssh` to an enrolled machine through an open relay connection: host key rule (known_hosts, else the
 * relay's attested keys), tunnel, embedded SSH session. Shared by `mssh ssh` and the full-screen picker.
 */
import { createHostKeyCheck } from '../known-hosts/host-key-policy.js';
import type { KnownHostsFile } from '../known-hosts/known-hosts-file.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { abortStream } from '@mssh/protocol/transport';
import { cliError } from '../errors.js';
import { runSsh, type RunSshOptions } from './run-ssh.js';
import { preloadSsh2 } from './ssh2-lazy.js';

/** The steps of a connection, in order, for progress reports (`mssh ssh -v`, the status line). */
export type ConnectStep = 'host-keys' | 'tunnel' | 'handshake' | 'authenticating';

export type SshViaRelayOptions = Omit<RunSshOptions, 'sock' | 'hostKey'> & {
  client: RelayClient;
  knownHosts: KnownHostsFile;
  /** Told when each step starts (`authenticating`: the key exchange is done and the host key accepted). */
  progress?: (step: ConnectStep) => void;
  /**
   * The relay's attested host keys when the caller has them already (`mssh exec` lists every machine
   * first): saves a request per machine. Used, like fetched ones, only when nothing is pinned for the name.
   */
  attested?: string[];
  /** The many-machine run (`mssh exec`) this session is part of: sent with the tunnel request, audited. */
  runId?: string;
  /**
   * Stop now (a timeout or Ctrl-C of a many-machine run): the tunnel is reset (RST_STREAM CANCEL, so the
   * relay records the session's end at once) and the session rejects.
   */
  signal?: AbortSignal;
};

import { assertHostName } from './openssh-names.js';

export { assertHostName };

export async function sshViaRelay(opts: SshViaRelayOptions): Promise<number> {
  const { client, knownHosts, host, progress, runId, signal, attested: known, ...rest } = opts;
  assertHostName(host);
  const stopped = () =>
    cliError('CLI_ERR_INTERRUPTED', `${host}: stopped (${String(signal?.reason ?? 'aborted')})`, '');
  if (signal?.aborted) throw stopped();
  preloadSsh2(); // loads while the relay round trips below are in flight
  // The relay's attested keys are needed (and fetched) only when nothing is pinned for this name yet.
  const pinned = knownHosts.lookup(host).length > 0;
  if (!pinned) progress?.('host-keys');
  const attested = pinned ? [] : known && known.length > 0 ? known : (await client.getHost(host)).hostKeys;
  const hostKey = createHostKeyCheck({
    host,
    knownHosts,
    attested,
    refresh: async () => (await client.refreshHostKeys(host)).hostKeys,
  });
  progress?.('tunnel');
  const tunnel = await client.openTunnel(host, runId ? { runId } : {});
  if (signal) {
    // A tunnel that opened after the stop is reset at once: the relay then ends (and audits) its session.
    if (signal.aborted) {
      abortStream(tunnel.stream);
      throw stopped();
    }
    const onAbort = () => abortStream(tunnel.stream);
    signal.addEventListener('abort', onAbort, { once: true });
    tunnel.stream.once('close', () => signal.removeEventListener('abort', onAbort));
  }
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
