import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { readNewPassword } from './password.js';
import type { Prompter } from './prompt.js';

const noTty: Prompter = { available: () => false, ask: () => Promise.reject(new Error('no')), say: () => undefined };
const typed = (...answers: string[]): Prompter => ({
  available: () => true,
  ask: async () => answers.shift() ?? '',
  say: () => undefined,
});
const read = (o: { stdin?: string; fromStdin?: boolean; prompter?: Prompter }) =>
  readNewPassword({
    fromStdin: o.fromStdin ?? false,
    stdin: Readable.from([Buffer.from(o.stdin ?? '')]),
    prompter: o.prompter ?? noTty,
    name: 'alice',
    command: 'mssh-relay user add alice',
  });

describe('readNewPassword', () => {
  it('--password-stdin: the first line, without its line ending', async () => {
    expect(await read({ fromStdin: true, stdin: 'alice-password\r\nsecond line\n' })).toBe('alice-password');
  });

  it('refuses a password outside 8..1024 characters, from stdin or typed', async () => {
    await expect(read({ fromStdin: true, stdin: 'short\n' })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_PASSWORD',
      message: 'the password must be 8 to 1024 characters',
    });
    await expect(read({ fromStdin: true, stdin: '\n' })).rejects.toMatchObject({ code: 'CLI_ERR_BAD_PASSWORD' });
    await expect(read({ fromStdin: true, stdin: `${'x'.repeat(1025)}\n` })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_PASSWORD',
    });
    await expect(read({ prompter: typed('short', 'short') })).rejects.toMatchObject({ code: 'CLI_ERR_BAD_PASSWORD' });
  });

  it('typed twice: the same twice, else CLI_ERR_BAD_PASSWORD; no terminal: CLI_ERR_NO_TTY naming --password-stdin', async () => {
    expect(await read({ prompter: typed('alice-password', 'alice-password') })).toBe('alice-password');
    await expect(read({ prompter: typed('alice-password', 'alice-passwort') })).rejects.toMatchObject({
      code: 'CLI_ERR_BAD_PASSWORD',
      message: 'the two passwords differ',
    });
    await expect(read({})).rejects.toMatchObject({
      code: 'CLI_ERR_NO_TTY',
      hint: expect.stringContaining('mssh-relay user add alice --password-stdin'),
    });
  });
});
