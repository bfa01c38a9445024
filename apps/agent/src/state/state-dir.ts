/**
 * The agent's state directory (0700; files 0600):
 *
 *   DIR/identity.key   Ed25519 private key, PKCS#8 PEM. Never leaves the machine.
 *   DIR/agent.json     { relayUrl, relayFingerprint, name, agentId, agentEndpoint, target, hostKeys, ... }
 *
 * Default DIR: /var/lib/mssh-agent as root, else ~/.local/share/mssh-agent; env MSSH_AGENT_STATE_DIR;
 * flag --state-dir.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writePrivateFile as writeKitPrivateFile } from '@mssh/cli-kit';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { HostName, SshPublicKey } from '@mssh/protocol';
import { AgentError } from '../errors.js';

export const IDENTITY_FILE = 'identity.key';
export const STATE_FILE = 'agent.json';

export function defaultStateDir(
  env: NodeJS.ProcessEnv = process.env,
  uid: number | null = process.getuid?.() ?? null,
  home: string = homedir(),
): string {
  if (env.MSSH_AGENT_STATE_DIR) return resolve(env.MSSH_AGENT_STATE_DIR);
  return uid === 0 ? '/var/lib/mssh-agent' : join(home, '.local', 'share', 'mssh-agent');
}

export const AgentState = z.object({
  version: z.literal(1),
  relayUrl: z.string(),
  relayFingerprint: z.string(),
  name: HostName,
  agentId: z.string(),
  agentEndpoint: z.string().nullable(),
  /** "host:port" of the SSH server sessions are connected to. */
  target: z.string(),
  /** The target's host keys as last reported (used when a fresh scan fails). */
  hostKeys: z.array(SshPublicKey).default([]),
  enrolledAt: z.string(),
});
export type AgentState = z.infer<typeof AgentState>;

/** Create DIR (0700) if needed and tighten its mode. */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot create the state directory ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass a writable --state-dir`,
      { cause: err },
    );
  }
}

/** Write a file atomically with mode 0600 (@mssh/cli-kit: fsync, unguessable temporary name, rename). */
export function writePrivateFile(path: string, data: string): void {
  try {
    writeKitPrivateFile(path, data);
  } catch (err) {
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      { cause: err },
    );
  }
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

export function isEnrolled(dir: string): boolean {
  return existsSync(statePath(dir));
}

export function readState(dir: string): AgentState {
  const path = statePath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AgentError(
        'AGT_ERR_NOT_ENROLLED',
        `no enrolment found in ${dir}; run \`mssh-agent enroll --relay URL --token T --name NAME --state-dir ${dir}\` first`,
      );
    }
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the --state-dir and its permissions`,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AgentError('AGT_ERR_STATE_DIR', `${path} is not valid JSON; enrol again into an empty --state-dir`, {
      cause: err,
    });
  }
  const parsed = AgentState.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AgentError(
      'AGT_ERR_STATE_DIR',
      `${path} is damaged (${issue?.path.join('.') || 'root'}: ${issue?.message ?? 'invalid'}); enrol again into an empty --state-dir`,
    );
  }
  return parsed.data;
}

export function writeState(dir: string, state: AgentState): void {
  writePrivateFile(statePath(dir), JSON.stringify(state, null, 2) + '\n');
}

/** Record the target's host keys in agent.json (offered to the relay when a fresh scan fails). */
export function storeHostKeys(dir: string, hostKeys: string[]): void {
  writeState(dir, { ...readState(dir), hostKeys });
}

/**
 * Record the embedded server's host keys when they differ from the stored ones (its key is created on
 * first start). A failure is logged, not fatal: the keys are only a fallback for a failed scan.
 */
export function storeHostKeysIfChanged(
  dir: string,
  stored: string[],
  keys: string[],
  log: { warn(obj: object, msg: string): void },
): void {
  if (keys.length === stored.length && keys.every((k) => stored.includes(k))) return;
  try {
    storeHostKeys(dir, keys);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not store the embedded server host key in agent.json');
  }
}
