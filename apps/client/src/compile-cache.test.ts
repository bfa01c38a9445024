/**
 * bin/compile-cache.cjs, the launcher's V8 code cache: each case runs a small CommonJS program in a fresh
 * Node process (a code cache is only consumed by an isolate that has not compiled the source already).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const LOADER = resolve(import.meta.dirname, '../bin/compile-cache.cjs');

let root: string;
let n = 0;

/** A program that needs a working require() and prints what it is. */
function program(tag: string): string {
  const file = join(root, `prog-${++n}.cjs`);
  writeFileSync(
    file,
    `const { basename } = require('node:path');\nconsole.log(JSON.stringify({ tag: ${JSON.stringify(tag)}, name: basename(__filename) }));\n`,
  );
  return file;
}

/** Run `file` through the loader in a new process; what it printed and what the loader reported. */
function run(
  file: string,
  env: Record<string, string>,
): { out: { tag: string; name: string }; cache: { cacheFile: string | null; usedCache: boolean } } {
  const script = `const r = require(${JSON.stringify(LOADER)}).runCompiled(${JSON.stringify(file)}); process.on('exit', () => process.stderr.write(JSON.stringify(r)));`;
  const p = spawnSync(process.execPath, ['-e', script], {
    env: { PATH: process.env.PATH ?? '', HOME: join(root, 'home'), ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (p.status !== 0) throw new Error(`loader run failed (${p.status}): ${p.stderr}`);
  return { out: JSON.parse(p.stdout.trim()), cache: JSON.parse(p.stderr) };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'mssh-compile-cache-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('compile cache of the mssh launcher', () => {
  it('the first run compiles and saves, the next one runs from the cache', () => {
    const dir = join(root, 'c1');
    const file = program('one');
    const first = run(file, { MSSH_CACHE_DIR: dir });
    expect(first.out).toEqual({ tag: 'one', name: 'prog-1.cjs' });
    expect(first.cache.usedCache).toBe(false);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(first.cache.cacheFile!).mode & 0o777).toBe(0o600);
    const second = run(file, { MSSH_CACHE_DIR: dir });
    expect(second.out).toEqual(first.out);
    expect(second.cache).toEqual({ cacheFile: first.cache.cacheFile, usedCache: true });
  });

  it('changed source of the same length gets a cache of its own and runs as it is now, the old cache removed', () => {
    const dir = join(root, 'c2');
    const file = program('aaaa');
    const a = run(file, { MSSH_CACHE_DIR: dir });
    writeFileSync(
      file,
      `const { basename } = require('node:path');\nconsole.log(JSON.stringify({ tag: "bbbb", name: basename(__filename) }));\n`,
    );
    const b = run(file, { MSSH_CACHE_DIR: dir });
    expect(b.out.tag).toBe('bbbb');
    expect(b.cache.usedCache).toBe(false);
    expect(b.cache.cacheFile).not.toBe(a.cache.cacheFile);
    expect(readdirSync(dir).filter((f) => f.endsWith('.v8cache'))).toEqual([b.cache.cacheFile!.split('/').pop()]);
  });

  it('a damaged cache is refused by V8, the program still runs and the cache is written again', () => {
    const dir = join(root, 'c3');
    const file = program('three');
    const first = run(file, { MSSH_CACHE_DIR: dir });
    writeFileSync(first.cache.cacheFile!, Buffer.alloc(4096, 0x41), { mode: 0o600 });
    const damaged = run(file, { MSSH_CACHE_DIR: dir });
    expect(damaged.out.tag).toBe('three');
    expect(damaged.cache.usedCache).toBe(false);
    expect(run(file, { MSSH_CACHE_DIR: dir }).cache.usedCache).toBe(true);
  });

  it('a cache directory or file that others can write is not trusted', () => {
    const dir = join(root, 'c4');
    const file = program('four');
    const first = run(file, { MSSH_CACHE_DIR: dir });
    chmodSync(first.cache.cacheFile!, 0o666);
    expect(run(file, { MSSH_CACHE_DIR: dir }).cache.usedCache).toBe(false);
    const open = join(root, 'c5');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    const r = run(file, { MSSH_CACHE_DIR: open });
    expect(r.out.tag).toBe('four');
    expect(r.cache).toEqual({ cacheFile: null, usedCache: false });
    expect(readdirSync(open)).toEqual([]);
  });

  it('XDG_CACHE_HOME and HOME place it; MSSH_COMPILE_CACHE=off turns it off', () => {
    const file = program('five');
    const xdg = join(root, 'xdg');
    expect(run(file, { XDG_CACHE_HOME: xdg }).cache.cacheFile!.startsWith(join(xdg, 'mssh') + '/')).toBe(true);
    expect(run(file, {}).cache.cacheFile!.startsWith(join(root, 'home', '.cache', 'mssh') + '/')).toBe(true);
    const off = run(file, { MSSH_COMPILE_CACHE: 'off', MSSH_CACHE_DIR: join(root, 'c6') });
    expect(off.out.tag).toBe('five');
    expect(off.cache).toEqual({ cacheFile: null, usedCache: false });
    expect(() => statSync(join(root, 'c6'))).toThrow();
  });
});
