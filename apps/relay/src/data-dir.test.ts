import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.js';
import { loadOrCreateRelayId, readRelayId, relayIdPath } from './data-dir.js';

const fresh = () => mkdtempSync(join(tmpdir(), 'mssh-data-dir-'));

function refusal(fn: () => unknown): CliError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('expected a refusal');
}

describe('the relay id', () => {
  it('reading creates nothing; loadOrCreateRelayId creates it once (0600) and then keeps it', () => {
    const dir = fresh();
    expect(readRelayId(dir)).toBeNull();
    expect(() => statSync(relayIdPath(dir))).toThrow(/ENOENT/);
    const id = loadOrCreateRelayId(dir);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(statSync(relayIdPath(dir)).mode & 0o777).toBe(0o600);
    expect(loadOrCreateRelayId(dir)).toBe(id);
    expect(readRelayId(dir)).toBe(id);
  });

  it('garbage in the file is refused with RLY_CLI_ERR_RELAY_ID, and the file is kept as it was', () => {
    const dir = fresh();
    writeFileSync(relayIdPath(dir), 'not-a-uuid\n');
    const e = refusal(() => loadOrCreateRelayId(dir));
    expect(e.code).toBe('RLY_CLI_ERR_RELAY_ID');
    expect(e.message).toContain(relayIdPath(dir));
    expect(e.hint).toMatch(/restore the file/);
    expect(readFileSync(relayIdPath(dir), 'utf8')).toBe('not-a-uuid\n');
  });

  it('a file that cannot be read (here a directory: EISDIR) is refused with RLY_CLI_ERR_RELAY_ID, not replaced', () => {
    const dir = fresh();
    mkdirSync(relayIdPath(dir));
    const e = refusal(() => loadOrCreateRelayId(dir));
    expect(e.code).toBe('RLY_CLI_ERR_RELAY_ID');
    expect(e.message).toMatch(/EISDIR/);
    expect(statSync(relayIdPath(dir)).isDirectory()).toBe(true);
  });
});
