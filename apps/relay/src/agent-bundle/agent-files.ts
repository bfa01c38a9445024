/**
 * What the self-contained agent needs at run time, found on this relay's disk:
 *
 *   <checkout>/apps/agent/dist/main.js        the agent bundle (its own code and the @mssh/* libs)
 *   node_modules/<dep>/...                    every npm package main.js loads, found by walking the
 *                                             production dependencies (dependencies + optionalDependencies)
 *                                             of @mssh/agent and of the @mssh/* libs bundled into it
 *   process.execPath                          the Node runtime the relay runs on
 *
 * Each package's own node_modules is left out (its nested dependencies are found by the walk and added
 * at their own path), and so are prebuilds/ for other platforms (node-pty ships them for every platform).
 * Nothing here writes; agent-bundle.ts stages and packs.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BundlePackage {
  name: string;
  version: string;
  /** The package's real directory. */
  dir: string;
  /** Where it goes in the bundle, e.g. node_modules/ssh2 or node_modules/a/node_modules/b. */
  path: string;
}

export interface AgentFiles {
  /** apps/agent of the checkout. */
  agentDir: string;
  /** apps/agent/dist/main.js. */
  main: string;
  /** The program's files under apps/agent/dist, relative to it: main.js and the chunks it imports (no maps). */
  dist: string[];
  packages: BundlePackage[];
}

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readPackage = (dir: string): PackageJson => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

/**
 * The agent's folder beside this relay: apps/agent of the same checkout (the relay runs from
 * apps/relay/dist/main.js or a chunk of it in dist/chunks/, or from its source under vitest). Null when there is none (an installed layout
 * without the agent's files) or it is not built.
 */
export function findAgentDir(from = dirname(fileURLToPath(import.meta.url))): string | null {
  for (const up of ['../../agent', '../../../agent']) {
    const dir = resolve(from, up);
    try {
      if (readPackage(dir).name === '@mssh/agent' && existsSync(join(dir, 'dist/main.js'))) return dir;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** Node's lookup of package `name` from directory `from`: <dir>/node_modules/<name>, then up the tree. */
function resolvePackage(name: string, from: string): string | null {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The bundle path of a package found at `dir`: from its first node_modules folder on. */
function bundlePath(dir: string): string {
  const parts = dir.split(sep);
  const i = parts.indexOf('node_modules');
  if (i < 0) throw new Error(`${dir} is not inside a node_modules folder`);
  return parts.slice(i).join('/');
}

/** Walk the agent's production dependency tree (see the header). Throws when a required package is missing. */
export function agentFiles(agentDir: string): AgentFiles {
  const byPath = new Map<string, BundlePackage>();
  const seenWorkspace = new Set<string>();
  const visit = (fromDir: string, pkg: PackageJson): void => {
    const deps: Array<[string, boolean]> = [
      ...Object.keys(pkg.dependencies ?? {}).map((d): [string, boolean] => [d, false]),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((d): [string, boolean] => [d, true]),
    ];
    for (const [name, optional] of deps) {
      const found = resolvePackage(name, fromDir);
      if (!found) {
        if (optional) continue;
        throw new Error(`${name} (a dependency of ${pkg.name ?? fromDir}) is not installed: run npm ci`);
      }
      if (name.startsWith('@mssh/')) {
        // A workspace lib: bundled into main.js, but its npm dependencies are loaded at run time.
        const real = realpathSync(found);
        if (seenWorkspace.has(real)) continue;
        seenWorkspace.add(real);
        visit(real, readPackage(real));
        continue;
      }
      const path = bundlePath(found);
      const real = realpathSync(found);
      const had = byPath.get(path);
      if (had) {
        if (had.dir !== real) throw new Error(`two copies of ${name} would go to ${path}: ${had.dir} and ${real}`);
        continue;
      }
      const own = readPackage(real);
      byPath.set(path, { name, version: own.version ?? '0.0.0', dir: real, path });
      visit(found, own);
    }
  };
  visit(agentDir, readPackage(agentDir));
  const packages = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  const chunks = existsSync(join(agentDir, 'dist/chunks'))
    ? readdirSync(join(agentDir, 'dist/chunks'))
        .filter((n) => n.endsWith('.js'))
        .sort()
        .map((n) => `chunks/${n}`)
    : [];
  return { agentDir, main: join(agentDir, 'dist/main.js'), dist: ['main.js', ...chunks], packages };
}

/** Top-level entries of a package left out of the bundle (see the header), given this platform. */
export function skipEntry(entry: string): boolean {
  return entry === 'node_modules';
}

/** Which prebuilds/<dir> to keep: this platform's (prebuildify names them <platform>-<arch>[...]). */
export function keepPrebuild(dir: string, platform = process.platform, arch = process.arch): boolean {
  return (
    dir === `${platform}-${arch}` || dir.startsWith(`${platform}-${arch}.`) || dir.startsWith(`${platform}-${arch}-`)
  );
}
