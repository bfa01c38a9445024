import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { freePort, waitFor } from '@mssh/test-fixtures/net';
import { identityFromPrivateKey } from '../enroll/identity.js';
import { TcpTarget } from '../target/tcp-target.js';
import { Backoff } from './backoff.js';
import { AgentSupervisor } from './supervisor.js';

describe('AgentSupervisor', () => {
  it('logs an observer that throws (with the outcome) and keeps dialling', async () => {
    const lines: Array<{ level: number; msg: string; outcome?: string; err?: { message: string } }> = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString())), cb()) }),
    );
    const port = await freePort(); // nothing listens: every dial fails at once (ECONNREFUSED)
    let calls = 0;
    const supervisor = new AgentSupervisor({
      endpoint: { host: '127.0.0.1', port },
      relayFingerprint: `SHA256:${'A'.repeat(43)}`,
      name: 'box',
      identity: identityFromPrivateKey(generateKeyPairSync('ed25519').privateKey),
      target: new TcpTarget({ address: { host: '127.0.0.1', port }, logger, knownHostKeys: [], scanTimeoutMs: 300 }),
      logger,
      backoff: new Backoff({ baseMs: 10, capMs: 20, refusedCapMs: 20 }),
      onOutcome: () => {
        calls++;
        throw new Error('observer bug');
      },
    });
    const run = supervisor.run();
    try {
      await waitFor(() => calls >= 2, 10_000, 'a second dial after the observer threw');
      const logged = lines.filter((l) => l.msg.includes('onOutcome observer threw'));
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged[0]).toMatchObject({ level: 50, outcome: 'failed', err: { message: 'observer bug' } });
    } finally {
      await supervisor.stop(100);
      await run;
    }
  });
});
