import { describe, expect, it } from 'vitest';
import { parseOperand, planCp, remotePath } from './cp-args.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

describe('mssh cp operands', () => {
  it('a colon before any slash makes an operand remote; ./a:b and /x/a:b are local', () => {
    expect(parseOperand('notes.txt')).toEqual({ kind: 'local', path: 'notes.txt' });
    expect(parseOperand('./a:b')).toEqual({ kind: 'local', path: './a:b' });
    expect(parseOperand('/x/a:b')).toEqual({ kind: 'local', path: '/x/a:b' });
    expect(parseOperand('laptop:/tmp/x')).toEqual({ kind: 'remote', user: null, host: 'laptop', path: '/tmp/x' });
    expect(parseOperand('bob@Laptop:x/y')).toEqual({ kind: 'remote', user: 'bob', host: 'laptop', path: 'x/y' });
    expect(parseOperand('laptop.mssh:a')).toMatchObject({ kind: 'remote', host: 'laptop', path: 'a' });
  });

  it('an empty remote path or ~ is the home directory; ~/x is home-relative', () => {
    expect(parseOperand('laptop:')).toMatchObject({ host: 'laptop', path: '.' });
    expect(remotePath('~')).toBe('.');
    expect(remotePath('~/')).toBe('.');
    expect(remotePath('~/a/b')).toBe('a/b');
    expect(remotePath('/abs')).toBe('/abs');
  });

  it('globs, label pairs and commas make a selector; a plain name is one machine', () => {
    expect(parseOperand('web-*:/tmp/')).toMatchObject({ kind: 'selector', selector: 'web-*', words: ['web-*'] });
    expect(parseOperand('env=prod,role=web:/tmp/')).toMatchObject({
      kind: 'selector',
      words: ['env=prod', 'role=web'],
      filter: { globs: [], labels: { env: 'prod', role: 'web' } },
      path: '/tmp/',
    });
    expect(parseOperand('ops@web-1,web-2:x')).toMatchObject({
      kind: 'selector',
      user: 'ops',
      words: ['web-1', 'web-2'],
    });
    expect(parseOperand('db-?:/tmp/')).toMatchObject({ kind: 'selector', words: ['db-?'] });
  });

  it('bad names and selectors are refused with their code', () => {
    expect(code(() => parseOperand('lap_top:/x'))).toBe('CLI_ERR_BAD_HOST_NAME');
    expect(code(() => parseOperand(':/x'))).toBe('CLI_ERR_USAGE');
    expect(code(() => parseOperand('@laptop:/x'))).toBe('CLI_ERR_USAGE');
    expect(code(() => parseOperand('web-*,:/x'))).toBe('CLI_ERR_USAGE');
    expect(code(() => parseOperand('web_*:/x'))).toBe('CLI_ERR_USAGE');
    expect(code(() => parseOperand('=prod:/x'))).toBe('CLI_ERR_BAD_LABEL');
  });

  it('--all takes :PATH (or user@:PATH) and nothing else', () => {
    expect(parseOperand(':/tmp/x', true)).toMatchObject({ kind: 'selector', selector: '--all', words: [] });
    expect(parseOperand('ops@:x', true)).toMatchObject({ kind: 'selector', user: 'ops' });
    expect(code(() => parseOperand('web-1:/tmp/x', true))).toBe('CLI_ERR_USAGE');
    expect(code(() => planCp({ sources: ['a'], dest: 'b', all: true }, 'me'))).toBe('CLI_ERR_USAGE');
  });
});

describe('mssh cp plans', () => {
  it('upload, download and push, with -l over user@ over the local user', () => {
    expect(planCp({ sources: ['a', 'b'], dest: 'laptop:d/' }, 'me')).toEqual({
      mode: 'upload',
      user: 'me',
      host: 'laptop',
      sources: ['a', 'b'],
      dest: 'd/',
    });
    expect(planCp({ sources: ['bob@laptop:a', 'bob@laptop:/b'], dest: '.' }, 'me')).toEqual({
      mode: 'download',
      user: 'bob',
      host: 'laptop',
      sources: ['a', '/b'],
      dest: '.',
    });
    expect(planCp({ sources: ['bob@laptop:a'], dest: '.', login: 'root' }, 'me')).toMatchObject({ user: 'root' });
    expect(planCp({ sources: ['f'], dest: 'web-*:/tmp/' }, 'me')).toMatchObject({
      mode: 'push',
      words: ['web-*'],
      all: false,
      sources: ['f'],
      dest: '/tmp/',
    });
    expect(planCp({ sources: ['f'], dest: ':/tmp/', all: true }, 'me')).toMatchObject({ mode: 'push', all: true });
  });

  it('refuses local-to-local, remote-to-remote, mixed sources and several source machines', () => {
    expect(code(() => planCp({ sources: ['a'], dest: 'b' }, 'me'))).toBe('CLI_ERR_USAGE');
    expect(code(() => planCp({ sources: [], dest: 'laptop:' }, 'me'))).toBe('CLI_ERR_USAGE');
    expect(code(() => planCp({ sources: ['a:x'], dest: 'b:y' }, 'me'))).toBe('CLI_ERR_CP_REMOTE_TO_REMOTE');
    expect(code(() => planCp({ sources: ['a:x', 'local'], dest: 'd' }, 'me'))).toBe('CLI_ERR_CP_REMOTE_TO_REMOTE');
    expect(code(() => planCp({ sources: ['a:x', 'b:y'], dest: 'd' }, 'me'))).toBe('CLI_ERR_CP_REMOTE_TO_REMOTE');
    expect(code(() => planCp({ sources: ['web-*:x'], dest: 'd' }, 'me'))).toBe('CLI_ERR_USAGE');
  });
});
