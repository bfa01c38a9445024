import { describe, expect, it } from 'vitest';
import { HostKeyRescanner } from './host-key-rescan.js';

describe('HostKeyRescanner (issue 17.4: rescans asked for by the relay are rate-limited)', () => {
  it('scans at most once per interval; callers in between share the last scan', async () => {
    let now = 0;
    let scans = 0;
    const r = new HostKeyRescanner(
      async () => [`ssh-ed25519 KEY${++scans}`],
      10_000,
      () => now,
    );
    const [a, b] = await Promise.all([r.keys(), r.keys()]);
    expect(a).toEqual(['ssh-ed25519 KEY1']);
    expect(b).toEqual(['ssh-ed25519 KEY1']);
    now = 9_999;
    for (let i = 0; i < 100; i++) await r.keys();
    expect(scans).toBe(1);
    now = 10_000;
    expect(await r.keys()).toEqual(['ssh-ed25519 KEY2']);
    expect(scans).toBe(2);
  });
});
