import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { list as tarList } from 'tar';
import { afterAll, describe, expect, it } from 'vitest';
import { RelayError } from '../errors.js';
import { agentFiles, findAgentDir, keepPrebuild } from './agent-files.js';
import { BUNDLE_TOP, agentBundleUnavailable, createAgentBundle } from './agent-bundle.js';

const root = mkdtempSync(join(tmpdir(), 'mssh-agent-bundle-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function pkg(dir: string, json: object, files: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify(json));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
}

/**
 * A checkout in miniature: @mssh/agent needs dep-a (which needs dep-b and its own nested dep-d) and the
 * workspace lib @mssh/lib (which needs dep-e); dep-a's nested dep-c and the top-level dev-only are not
 * needed; dep-b ships prebuilds for two platforms; an optional dependency is not installed.
 */
function checkout(): { agentDir: string; node: string } {
  const nm = join(root, 'node_modules');
  pkg(
    join(root, 'apps/agent'),
    {
      name: '@mssh/agent',
      dependencies: { 'dep-a': '1', '@mssh/lib': '0.1.0' },
      optionalDependencies: { 'not-installed': '1' },
    },
    { 'dist/main.js': 'console.log("agent")\n' },
  );
  pkg(join(root, 'libs/lib'), { name: '@mssh/lib', dependencies: { 'dep-e': '1' } });
  mkdirSync(join(nm, '@mssh'), { recursive: true });
  symlinkSync(join(root, 'libs/lib'), join(nm, '@mssh/lib'));
  pkg(
    join(nm, 'dep-a'),
    { name: 'dep-a', version: '1.0.0', dependencies: { 'dep-b': '1', 'dep-d': '2' } },
    { 'index.js': 'a' },
  );
  pkg(join(nm, 'dep-a/node_modules/dep-c'), { name: 'dep-c', version: '1.0.0' }, { 'index.js': 'c' });
  pkg(join(nm, 'dep-a/node_modules/dep-d'), { name: 'dep-d', version: '2.0.0' }, { 'index.js': 'd2' });
  pkg(join(nm, 'dep-d'), { name: 'dep-d', version: '1.0.0' }, { 'index.js': 'd1' });
  pkg(
    join(nm, 'dep-b'),
    { name: 'dep-b', version: '1.0.0' },
    {
      'prebuilds/linux-x64/b.node': 'linux',
      'prebuilds/darwin-arm64/b.node': 'darwin',
      'lib/b.js': 'b',
    },
  );
  pkg(join(nm, 'dep-e'), { name: 'dep-e', version: '1.0.0' }, { 'index.js': 'e' });
  pkg(join(nm, 'dev-only'), { name: 'dev-only', version: '1.0.0' }, { 'index.js': 'dev' });
  const node = join(root, 'fake-node');
  writeFileSync(node, '#!/bin/sh\necho fake node\n');
  chmodSync(node, 0o755);
  return { agentDir: join(root, 'apps/agent'), node };
}

const { agentDir, node } = checkout();
const silent = pino({ level: 'silent' });

async function entries(file: string): Promise<Map<string, { mode: number; size: number }>> {
  const out = new Map<string, { mode: number; size: number }>();
  await tarList({
    file,
    onReadEntry: (e) => void out.set(e.path.replace(/\/$/, ''), { mode: e.mode ?? 0, size: e.size ?? 0 }),
  });
  return out;
}

describe('agent files', () => {
  it('walks the production dependencies, through workspace libs, nested copies at their own path', () => {
    const f = agentFiles(agentDir);
    expect(f.packages.map((p) => `${p.path}@${p.version}`)).toEqual([
      'node_modules/dep-a@1.0.0',
      'node_modules/dep-a/node_modules/dep-d@2.0.0',
      'node_modules/dep-b@1.0.0',
      'node_modules/dep-e@1.0.0',
    ]);
    expect(f.main).toBe(join(agentDir, 'dist/main.js'));
  });

  it('a missing required dependency is an error naming it', () => {
    const dir = join(root, 'apps/broken');
    pkg(dir, { name: '@mssh/agent', dependencies: { 'no-such-dep': '1' } });
    expect(() => agentFiles(dir)).toThrow(/no-such-dep .*not installed/);
  });

  it('keeps only this platform of prebuilds/', () => {
    expect(keepPrebuild('linux-x64', 'linux', 'x64')).toBe(true);
    expect(keepPrebuild('linux-x64.glibc', 'linux', 'x64')).toBe(true);
    expect(keepPrebuild('darwin-arm64', 'linux', 'x64')).toBe(false);
    expect(keepPrebuild('linux-x64ish', 'linux', 'x64')).toBe(false);
  });

  it('finds the agent of this checkout beside the relay source', () => {
    // Built by npm run build before the tests (the e2e global setup needs it too).
    expect(findAgentDir()).toMatch(/apps\/agent$/);
    expect(findAgentDir(join(root, 'nowhere/a/b'))).toBeNull();
  });
});

describe('agent bundle', () => {
  it('says why it cannot serve: no agent beside the relay, or another platform', () => {
    expect(agentBundleUnavailable(agentDir, 'linux-x64')).toBeNull();
    expect(agentBundleUnavailable(null, 'linux-x64')).toBe('no built apps/agent beside this relay');
    expect(agentBundleUnavailable(agentDir, 'darwin-arm64')).toBe('the relay runs on darwin-arm64, not linux-x64');
  });

  const dataDir = join(root, 'data');
  const bundle = () =>
    createAgentBundle({ dataDir, logger: silent, agentDir, nodePath: node, platform: 'linux', arch: 'x64' });

  it('packs the launcher, the runtime, main.js and the dependencies; the sha256 is the file', async () => {
    const b = bundle();
    const info = await b.get();
    const bytes = readFileSync(info.file);
    expect(info.size).toBe(bytes.length);
    expect(info.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(readFileSync(info.file.replace(/\.tar\.gz$/, '.sha256'), 'utf8')).toMatch(
      new RegExp(`^${info.sha256}  mssh-agent-linux-x64.tar.gz\n$`),
    );
    const e = await entries(info.file);
    const files = [...e.keys()].filter((p) => e.get(p)!.size > 0 || p.endsWith('.js') || p.endsWith('.node'));
    expect(files.sort()).toEqual(
      [
        'bin/mssh-agent',
        'bin/node',
        'dist/main.js',
        'package.json',
        'VERSION',
        'node_modules/dep-a/index.js',
        'node_modules/dep-a/package.json',
        'node_modules/dep-a/node_modules/dep-d/index.js',
        'node_modules/dep-a/node_modules/dep-d/package.json',
        'node_modules/dep-b/lib/b.js',
        'node_modules/dep-b/package.json',
        'node_modules/dep-b/prebuilds/linux-x64/b.node',
        'node_modules/dep-e/index.js',
        'node_modules/dep-e/package.json',
      ]
        .map((p) => `${BUNDLE_TOP}/${p}`)
        .sort(),
    );
    expect(e.get(`${BUNDLE_TOP}/bin/node`)!.mode & 0o111).toBe(0o111);
    expect(e.get(`${BUNDLE_TOP}/bin/mssh-agent`)!.mode & 0o111).toBe(0o111);
    // The same content again is the cached tarball, also for a new relay process (a new instance).
    expect(await b.get()).toEqual(info);
    const again = await bundle().get();
    expect(again).toEqual(info);
    expect(readdirSync(join(dataDir, 'agent-bundle')).sort()).toEqual(
      [info.file, info.file.replace(/\.tar\.gz$/, '.sha256')].map((f) => f.slice(f.lastIndexOf('/') + 1)).sort(),
    );
  });

  it('is reproducible: the same files make the same bytes in another data dir (another relay of a fleet)', async () => {
    const one = await bundle().get();
    const other = await createAgentBundle({
      dataDir: join(root, 'data-other'),
      logger: silent,
      agentDir,
      nodePath: node,
      platform: 'linux',
      arch: 'x64',
    }).get();
    expect(other.sha256).toBe(one.sha256);
  });

  it('a rebuilt agent makes a new tarball and the old one goes', async () => {
    const b = bundle();
    const before = await b.get();
    writeFileSync(join(agentDir, 'dist/main.js'), 'console.log("agent v2")\n');
    const after = await b.get();
    expect(after.sha256).not.toBe(before.sha256);
    expect(readdirSync(join(dataDir, 'agent-bundle'))).toHaveLength(2);
  });

  it('no agent beside the relay, or another platform: RLY_ERR_AGENT_BUNDLE_UNAVAILABLE, nothing built', async () => {
    const none = createAgentBundle({ dataDir: join(root, 'd2'), logger: silent, agentDir: null });
    await expect(none.get()).rejects.toSatisfy(
      (e) => e instanceof RelayError && e.code === 'RLY_ERR_AGENT_BUNDLE_UNAVAILABLE' && e.statusCode === 404,
    );
    const arm = createAgentBundle({
      dataDir: join(root, 'd3'),
      logger: silent,
      agentDir,
      platform: 'linux',
      arch: 'arm64',
    });
    await expect(arm.get()).rejects.toSatisfy(
      (e) =>
        e instanceof RelayError &&
        e.code === 'RLY_ERR_AGENT_BUNDLE_UNAVAILABLE' &&
        String(e.cause).includes('linux-arm64'),
    );
  });
});
