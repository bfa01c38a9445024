'use strict';
/**
 * Runs the bundled `mssh` CLI (dist/main.cjs) with a V8 code cache, so a short command does not compile
 * the same ~1 MB of JavaScript again every time it starts.
 *
 * Compiling the bundle was the largest part of `mssh`'s start-up (~60 ms of ~150 ms of our own on a
 * 2-vCPU VM, bench/README.md finding 11), and every `mssh ssh host cmd` pays its start-up before the
 * session can begin. Node 20 has no compile cache of its own (module.enableCompileCache is Node 22),
 * so this does what it does for one file: compile with vm.Script and the cached data from the last run;
 * when there was none or V8 refused it, save the code V8 compiled by the time the process exits.
 *
 * The cache is an optimisation and never a reason to fail: any problem means "compile as usual".
 * V8 trusts cached data, so it is only read from a directory that is this user's alone:
 *   - $MSSH_CACHE_DIR, else $XDG_CACHE_HOME/mssh, else ~/.cache/mssh; created 0700;
 *   - used only when it is a real directory owned by this user and not writable by group or others,
 *     and the cache file is a regular file owned by this user, not writable by group or others;
 *   - the file name carries a SHA-256 of Node's and V8's versions and the bundle's bytes, so a rebuilt or
 *     upgraded CLI never runs with code compiled from other source (V8's own check is the length only);
 *   - written to a temporary file (0600) and renamed into place; older caches of the file are removed.
 * MSSH_COMPILE_CACHE=off turns it off.
 */
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const vm = require('node:vm');
const crypto = require('node:crypto');
const Module = require('node:module');

const SUFFIX = '.v8cache';

/** Where the cache lives for this environment, or null when it is turned off. */
function cacheDirFor(env) {
  const off = String(env.MSSH_COMPILE_CACHE ?? '').toLowerCase();
  if (off === 'off' || off === '0' || off === 'false' || off === 'no') return null;
  if (env.MSSH_CACHE_DIR) return path.resolve(env.MSSH_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'mssh');
}

function ownedAndClosed(st) {
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (uid !== null && st.uid !== uid) return false;
  return (st.mode & 0o022) === 0;
}

/** The directory exists (created 0700 if need be), is a real directory, ours, and closed to others. */
function privateDir(dir) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    return st.isDirectory() && ownedAndClosed(st);
  } catch {
    return false;
  }
}

function readCache(file) {
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || !ownedAndClosed(st)) return undefined;
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

function writeCache(dir, file, script) {
  try {
    const data = script.createCachedData();
    const base = path.basename(file);
    const tmp = path.join(dir, `.${base}.${process.pid}.tmp`);
    fs.writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
    // Caches of the same bundle from other builds: `<bundle name>-<other key>.v8cache`.
    const prefix = base.slice(0, base.lastIndexOf('-') + 1);
    for (const name of fs.readdirSync(dir)) {
      if (name !== base && name.startsWith(prefix) && name.endsWith(SUFFIX)) {
        try {
          fs.unlinkSync(path.join(dir, name));
        } catch {
          /* another run removed it */
        }
      }
    }
  } catch {
    // A cache that cannot be written is only a slower next start.
  }
}

/**
 * Run the CommonJS file `file` as the program, with the code cache. Returns what happened to the cache
 * (for tests): `cacheFile` (null when off or unusable) and `usedCache`. `atExit` registers the writer
 * (default: the process's 'exit' event, so the cache holds everything compiled during the run).
 */
function runCompiled(file, opts = {}) {
  const env = opts.env ?? process.env;
  const atExit = opts.atExit ?? ((fn) => process.once('exit', fn));
  const source = fs.readFileSync(file, 'utf8');
  const dir = cacheDirFor(env);
  let cacheFile = null;
  let cached;
  if (dir !== null && privateDir(dir)) {
    const key = crypto
      .createHash('sha256')
      .update(`${process.version}\0${process.versions.v8}\0${process.arch}\0`)
      .update(source)
      .digest('hex')
      .slice(0, 32);
    cacheFile = path.join(dir, `${path.basename(file)}-${key}${SUFFIX}`);
    cached = readCache(cacheFile);
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData: cached });
  const usedCache = cached !== undefined && !script.cachedDataRejected;
  if (cacheFile !== null && !usedCache) {
    const target = cacheFile;
    atExit(() => writeCache(dir, target, script));
  }
  const mod = new Module(file, null);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  const fn = script.runInThisContext({ displayErrors: true });
  fn.call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  mod.loaded = true;
  return { cacheFile, usedCache };
}

module.exports = { runCompiled, cacheDirFor };
