import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writePrivateFile } from './private-file.js';

describe('writePrivateFile', () => {
  it('writes 0600 whatever the umask and the old mode, replacing the file, and leaves no temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kit-pf-'));
    const path = join(dir, 'state.json');
    writeFileSync(path, 'old', { mode: 0o644 });
    const old = process.umask(0);
    try {
      writePrivateFile(path, 'new');
    } finally {
      process.umask(old);
    }
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('writeFileAtomic: the mode asked for (a certificate beside its key), also replacing atomically', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kit-pf-'));
    const path = join(dir, 'cert.pem');
    writeFileAtomic(path, 'cert', 0o644);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['cert.pem']);
  });

  it('uses an unguessable temporary name: a planted `<file>.tmp-<pid>` symlink is neither followed nor fatal', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kit-pf-'));
    const path = join(dir, 'agent.json');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, `${path}.tmp-${process.pid}`); // the old agent writer's predictable name
    writePrivateFile(path, 'secret');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readFileSync(path, 'utf8')).toBe('secret');
  });

  it('fails with the file system error and removes its temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kit-pf-'));
    const target = join(dir, 'sub');
    writeFileSync(target, 'a file, not a directory');
    expect(() => writePrivateFile(join(target, 'x.json'), 'x')).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(readdirSync(dir)).toEqual(['sub']);
  });
});
