import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState, storeHostKeysIfChanged, writeState, type AgentState } from './state-dir.js';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkCZ5OOWJ7ELlq3J0I+WeyWGt7wQz2fsTJNvlGqj3ho';

function enrolled(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-state-'));
  const state: AgentState = {
    version: 1,
    relayUrl: 'https://r:8443',
    relayFingerprint: 'SHA256:x',
    name: 'web-1',
    agentId: 'a1',
    agentEndpoint: null,
    target: 'embedded',
    hostKeys: [KEY_A],
    enrolledAt: new Date(0).toISOString(),
  };
  writeState(dir, state);
  return dir;
}

describe('state dir: host keys', () => {
  it('stores the embedded server keys only when they changed; agent.json stays 0600 with no temporary file left', () => {
    const dir = enrolled();
    const warnings: string[] = [];
    const log = { warn: (_o: object, m: string) => void warnings.push(m) };
    const before = statSync(join(dir, 'agent.json')).mtimeMs;
    storeHostKeysIfChanged(dir, [KEY_A], [KEY_A], log);
    expect(statSync(join(dir, 'agent.json')).mtimeMs).toBe(before);
    storeHostKeysIfChanged(dir, [KEY_A], [KEY_B], log);
    expect(readState(dir).hostKeys).toEqual([KEY_B]);
    expect(statSync(join(dir, 'agent.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['agent.json']);
    expect(warnings).toEqual([]);
  });

  it('a failure to store is a warning, not fatal (the keys are only a fallback for a failed scan)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-state-')); // not enrolled: agent.json cannot be read
    const warnings: string[] = [];
    storeHostKeysIfChanged(dir, [], [KEY_A], { warn: (_o, m) => void warnings.push(m) });
    expect(warnings).toEqual(['could not store the embedded server host key in agent.json']);
  });
});
