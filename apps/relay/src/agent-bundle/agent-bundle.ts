/**
 * The self-contained agent the relay serves for the one-line install (issue 20): a gzipped tar of
 *
 *   mssh-agent/bin/mssh-agent      sh launcher: runs bin/node on dist/main.js (no node needed on the machine)
 *   mssh-agent/bin/node            the Node runtime this relay runs on (process.execPath)
 *   mssh-agent/dist/main.js        the agent (apps/agent/dist; with dist/chunks/*.js, the parts
 *                                  main.js loads when a command needs them)
 *   mssh-agent/node_modules/...    its npm dependencies, native modules included (agent-files.ts)
 *   mssh-agent/package.json        {"type": "module"}, so node loads main.js as ESM
 *
 * Built lazily, on the first request that needs it (never at start: the relay starts as fast as before),
 * once per content: <data-dir>/agent-bundle/mssh-agent-linux-x64-<key>.tar.gz and its .sha256, where the key
 * hashes the relay version, the Node runtime, main.js and the packages' versions. A relay restarted on the
 * same files serves the cached tarball at once; one concurrent build at most. Packing streams: node-tar
 * reads a staging folder of symlinks (followed) into node:zlib's gzip, hashed on the way to the file. The
 * tarball is reproducible (sorted entries, no owners, one mtime): relays of a fleet on the same version and
 * files serve the same bytes, so a script from one relay and a tarball from another agree.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile, chmod, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Logger } from 'pino';
import { SOFTWARE_VERSION } from '@mssh/protocol';
import { relayError, type RelayError } from '../errors.js';
import { agentFiles, findAgentDir, keepPrebuild, skipEntry, type AgentFiles } from './agent-files.js';

/** The only platform served: the tarball carries the relay's own Node runtime. */
export const BUNDLE_PLATFORM = 'linux-x64';
export const TARBALL_NAME = `mssh-agent-${BUNDLE_PLATFORM}.tar.gz`;
/** The folder at the top of the tarball. */
export const BUNDLE_TOP = 'mssh-agent';

export interface AgentBundleInfo {
  file: string;
  /** Hex SHA-256 of the tarball. */
  sha256: string;
  size: number;
  version: string;
}

export interface AgentBundle {
  /** The tarball, built now if needed. Throws RLY_ERR_AGENT_BUNDLE_UNAVAILABLE when this relay cannot. */
  get(): Promise<AgentBundleInfo>;
}

export interface AgentBundleOptions {
  dataDir: string;
  logger: Logger;
  /** apps/agent of the checkout (default: found beside this relay; null: none). */
  agentDir?: string | null;
  /** The Node runtime to ship (default process.execPath). */
  nodePath?: string;
  /** Default process.platform / process.arch. */
  platform?: string;
  arch?: string;
}

/** The launcher: follows symlinks to itself (readlink -f), so /usr/local/bin/mssh-agent -> here works. */
export const LAUNCHER = `#!/bin/sh
# mssh-agent, self-contained: the bundled Node runtime runs the bundled agent (no node needed here).
self=$(readlink -f "$0" 2>/dev/null || printf '%s' "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
exec "$root/bin/node" "$root/dist/main.js" "$@"
`;

/**
 * Why this relay cannot serve the agent (another platform, no built agent beside it), or null when it can.
 * For `mssh-relay agent enroll`, which prints the one-liner only when it would work.
 */
export function agentBundleUnavailable(
  agentDir: string | null = findAgentDir(),
  platform = `${process.platform}-${process.arch}`,
): string | null {
  if (platform !== BUNDLE_PLATFORM) return `the relay runs on ${platform}, not ${BUNDLE_PLATFORM}`;
  if (!agentDir) return 'no built apps/agent beside this relay';
  return null;
}

export function createAgentBundle(opts: AgentBundleOptions): AgentBundle {
  const log = opts.logger.child({ component: 'relay.agent-bundle' });
  const platform = `${opts.platform ?? process.platform}-${opts.arch ?? process.arch}`;
  const nodePath = opts.nodePath ?? process.execPath;
  const dir = join(opts.dataDir, 'agent-bundle');
  const agentDir = opts.agentDir === undefined ? findAgentDir() : opts.agentDir;
  let pending: Promise<AgentBundleInfo> | null = null;
  let ready: { info: AgentBundleInfo; mainMtimeMs: number } | null = null;

  const unavailable = (why: string): RelayError => {
    const e = relayError('RLY_ERR_AGENT_BUNDLE_UNAVAILABLE');
    e.cause = why;
    return e;
  };

  async function locate(): Promise<AgentFiles> {
    const why = agentBundleUnavailable(agentDir, platform);
    if (why || !agentDir) throw unavailable(why ?? '');
    return agentFiles(agentDir);
  }

  async function build(): Promise<AgentBundleInfo> {
    const files = await locate();
    const program = createHash('sha256');
    for (const rel of files.dist) program.update(`${rel}\0`).update(await readFile(join(files.agentDir, 'dist', rel)));
    const node = await stat(nodePath);
    const key = createHash('sha256')
      .update(
        JSON.stringify({
          v: SOFTWARE_VERSION,
          node: [process.version, node.size, node.mtimeMs],
          platform,
          main: program.digest('hex'),
          packages: files.packages.map((p) => `${p.path}@${p.version}`),
        }),
      )
      .digest('hex')
      .slice(0, 16);
    const base = join(dir, `mssh-agent-${platform}-${key}`);
    const cached = await readCached(base);
    if (cached) {
      log.info({ file: cached.file, sha256: cached.sha256 }, 'agent bundle: using the cached tarball');
      return cached;
    }
    const t0 = Date.now();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stage = join(dir, `stage-${process.pid}-${Date.now()}`);
    try {
      await stageBundle(stage, files, nodePath);
      const tmp = `${base}.tar.gz.tmp-${process.pid}`;
      const hash = createHash('sha256');
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      // Every path listed in sorted order (no directory recursion by tar: readdir order depends on the file
      // system), no owners, one mtime: the same files make the same bytes on every relay of a fleet.
      const { create: tarCreate } = await import('tar'); // only when a bundle is built, not at every start
      const pack = tarCreate(
        { cwd: stage, portable: true, follow: true, noDirRecurse: true, mtime: new Date(0) },
        await sortedTree(stage, BUNDLE_TOP),
      );
      await pipeline(pack as unknown as NodeJS.ReadableStream, createGzip(), tap, createWriteStream(tmp));
      const sha256 = hash.digest('hex');
      await writeFile(`${base}.sha256`, `${sha256}  ${TARBALL_NAME}\n`);
      await rename(tmp, `${base}.tar.gz`);
      // Older tarballs (another version, another runtime) go.
      for (const f of await readdir(dir)) {
        if (!f.startsWith(`mssh-agent-${platform}-${key}`) && f.startsWith('mssh-agent-'))
          await rm(join(dir, f), { force: true });
      }
      log.info(
        { file: `${base}.tar.gz`, sha256, bytes: size, packages: files.packages.length, ms: Date.now() - t0 },
        `agent bundle: built ${TARBALL_NAME} (${(size / 1e6).toFixed(1)} MB) in ${Date.now() - t0} ms`,
      );
      return { file: `${base}.tar.gz`, sha256, size, version: SOFTWARE_VERSION };
    } finally {
      await rm(stage, { recursive: true, force: true });
    }
  }

  const mainMtime = async (): Promise<number> =>
    agentDir ? ((await stat(join(agentDir, 'dist/main.js')).catch(() => null))?.mtimeMs ?? 0) : 0;

  return {
    async get() {
      // A rebuilt agent (npm run build while the relay runs) makes a new tarball at the next request.
      if (ready && ready.mainMtimeMs === (await mainMtime())) return ready.info;
      pending ??= (async () => {
        try {
          const mainMtimeMs = await mainMtime();
          const info = await build();
          ready = { info, mainMtimeMs };
          return info;
        } finally {
          pending = null;
        }
      })();
      return pending;
    },
  };
}

async function readCached(base: string): Promise<AgentBundleInfo | null> {
  try {
    const [text, st] = await Promise.all([readFile(`${base}.sha256`, 'utf8'), stat(`${base}.tar.gz`)]);
    const sha256 = text.split(/\s+/)[0] ?? '';
    if (!/^[0-9a-f]{64}$/.test(sha256)) return null;
    return { file: `${base}.tar.gz`, sha256, size: st.size, version: SOFTWARE_VERSION };
  } catch {
    return null;
  }
}

/** The staging folder: real folders and small files, symlinks to everything big (tar follows them). */
async function stageBundle(stage: string, files: AgentFiles, nodePath: string): Promise<void> {
  const top = join(stage, BUNDLE_TOP);
  await mkdir(join(top, 'bin'), { recursive: true });
  await mkdir(join(top, 'dist'), { recursive: true });
  await writeFile(join(top, 'bin/mssh-agent'), LAUNCHER);
  await chmod(join(top, 'bin/mssh-agent'), 0o755);
  await symlink(nodePath, join(top, 'bin/node'));
  if (files.dist.some((rel) => rel.startsWith('chunks/'))) await mkdir(join(top, 'dist/chunks'), { recursive: true });
  for (const rel of files.dist) await symlink(join(files.agentDir, 'dist', rel), join(top, 'dist', rel));
  await writeFile(
    join(top, 'package.json'),
    JSON.stringify({ name: 'mssh-agent-bundle', version: SOFTWARE_VERSION, private: true, type: 'module' }, null, 2) +
      '\n',
  );
  await writeFile(join(top, 'VERSION'), `${SOFTWARE_VERSION}\n`);
  for (const pkg of files.packages) {
    const at = join(top, pkg.path);
    await mkdir(at, { recursive: true });
    for (const entry of await readdir(pkg.dir)) {
      if (skipEntry(entry)) continue;
      if (entry === 'prebuilds') {
        await mkdir(join(at, entry));
        for (const sub of await readdir(join(pkg.dir, entry))) {
          if (keepPrebuild(sub)) await symlink(join(pkg.dir, entry, sub), join(at, entry, sub));
        }
        continue;
      }
      await symlink(await linkTarget(join(pkg.dir, entry)), join(at, entry));
    }
  }
}

/** `top` and everything under it (symlinks followed), each folder before its entries, in code-point order. */
async function sortedTree(cwd: string, top: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    out.push(rel);
    if (!(await stat(join(cwd, rel))).isDirectory()) return;
    const names = (await readdir(join(cwd, rel))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) await walk(`${rel}/${name}`);
  };
  await walk(top);
  return out;
}

/** A symlink inside a package is kept pointing where it points (relative targets resolved). */
async function linkTarget(p: string): Promise<string> {
  try {
    const t = await readlink(p);
    return t.startsWith('/') ? t : join(p, '..', t);
  } catch {
    return p;
  }
}
