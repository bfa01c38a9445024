import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayError } from '../../errors.js';
import { installErrorHandling } from '../errors-edge.js';
import type { AgentBundle } from '../../agent-bundle/agent-bundle.js';
import { installRoutes } from './install.js';

const dir = mkdtempSync(join(tmpdir(), 'mssh-install-routes-'));
const tarball = join(dir, 'bundle.tar.gz');
const bytes = Buffer.from('not really a tarball, but bytes to serve');
writeFileSync(tarball, bytes);
const sha256 = createHash('sha256').update(bytes).digest('hex');
const relay = () => ({ url: 'https://relay:8443', fingerprint: 'SHA256:fp', publicKeyPin: 'sha256//pin=' });

async function app(bundle: AgentBundle, downloadsPerMinute?: number): Promise<FastifyInstance> {
  const a = fastify();
  installErrorHandling(a);
  await a.register(installRoutes, { bundle, relay, downloadsPerMinute });
  return a;
}

let builds = 0;
const ready: AgentBundle = {
  get: async () => {
    builds++;
    return { file: tarball, sha256, size: bytes.length, version: '0.1.0' };
  },
};
let served: FastifyInstance;
beforeAll(async () => {
  served = await app(ready, 3);
});
afterAll(async () => {
  await served.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('install routes', () => {
  it('GET /install/agent.sh: a shell script with the relay URL, pin and the tarball sha256', async () => {
    const r = await served.inject({ method: 'GET', url: '/install/agent.sh' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/x-shellscript; charset=utf-8');
    expect(r.body).toContain("RELAY_URL='https://relay:8443'");
    expect(r.body).toContain("RELAY_PIN='sha256//pin='");
    expect(r.body).toContain(`TARBALL_SHA256='${sha256}'`);
    expect(builds).toBeGreaterThan(0);
  });

  it('GET the tarball: the bytes, their length and sha256; then 429 RLY_ERR_DOWNLOAD_LIMIT per address', async () => {
    const r = await served.inject({ method: 'GET', url: '/install/mssh-agent-linux-x64.tar.gz' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/gzip');
    expect(r.headers['content-length']).toBe(String(bytes.length));
    expect(r.headers['x-mssh-sha256']).toBe(sha256);
    expect(r.rawPayload.equals(bytes)).toBe(true);
    for (let i = 0; i < 3; i++) await served.inject({ method: 'GET', url: '/install/mssh-agent-linux-x64.tar.gz' });
    const limited = await served.inject({ method: 'GET', url: '/install/mssh-agent-linux-x64.tar.gz' });
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'RLY_ERR_DOWNLOAD_LIMIT' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const other = await served.inject({
      method: 'GET',
      url: '/install/mssh-agent-linux-x64.tar.gz',
      remoteAddress: '10.1.2.3',
    });
    expect(other.statusCode).toBe(200);
  });

  it('a relay without the agent files: 404 RLY_ERR_AGENT_BUNDLE_UNAVAILABLE on both paths', async () => {
    const a = await app({
      get: async () => {
        throw relayError('RLY_ERR_AGENT_BUNDLE_UNAVAILABLE');
      },
    });
    for (const url of ['/install/agent.sh', '/install/mssh-agent-linux-x64.tar.gz']) {
      const r = await a.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(404);
      expect(r.json()).toMatchObject({ statusCode: 404, code: 'RLY_ERR_AGENT_BUNDLE_UNAVAILABLE' });
      expect(r.json().message).toContain("without the agent's built files");
    }
    await a.close();
  });

  it('a failed build is RLY_ERR_INTERNAL without its details', async () => {
    const a = await app({
      get: async () => {
        throw new Error('EACCES /secret/path');
      },
    });
    const r = await a.inject({ method: 'GET', url: '/install/agent.sh' });
    expect(r.statusCode).toBe(500);
    expect(r.json()).toMatchObject({ code: 'RLY_ERR_INTERNAL' });
    expect(r.body).not.toContain('/secret/path');
    await a.close();
  });
});
