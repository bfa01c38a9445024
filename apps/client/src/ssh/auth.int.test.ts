/**
 * Authentication order and prompts of the embedded client, against ssh2's own SSH server in process
 * (the OpenSSH fixture allows public keys only): password and keyboard-interactive prompts, encrypted key
 * passphrases, and the failure report when nothing works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import ssh2 from 'ssh2';
import type { AuthenticationType, ParsedKey } from 'ssh2';
import { generateEd25519KeyPair } from '@mssh/protocol/ssh2-keys';
import type { CliError } from '../errors.js';
import { noPrompter, type Prompter } from '@mssh/cli-kit';
import { runSsh } from './run-ssh.js';

const { Server, utils } = ssh2;

let dir: string;
let server: InstanceType<typeof Server>;
let port: number;
/** What the server accepts in the current test. */
let allowed: { methods: AuthenticationType[]; password?: string; code?: string; publicKey?: ParsedKey } = {
  methods: [],
};
const attempts: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mssh-auth-'));
  const hostKey = generateEd25519KeyPair().private;
  server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      attempts.push(ctx.method);
      const a = allowed;
      if (ctx.method === 'password' && a.methods.includes('password') && ctx.password === a.password)
        return ctx.accept();
      if (ctx.method === 'keyboard-interactive' && a.methods.includes('keyboard-interactive')) {
        return ctx.prompt([{ prompt: 'Verification code: ', echo: true }], 'Two-factor', 'Type the code', (answers) =>
          answers[0] === a.code ? ctx.accept() : ctx.reject(a.methods),
        );
      }
      if (
        ctx.method === 'publickey' &&
        a.methods.includes('publickey') &&
        a.publicKey &&
        ctx.key.data.equals(a.publicKey.getPublicSSH())
      ) {
        if (!ctx.signature) return ctx.accept();
        if (a.publicKey.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      }
      ctx.reject(a.methods);
    });
    client.on('ready', () => {
      client.on('session', (accept) => {
        accept().on('exec', (acc, _rej, info) => {
          const ch = acc();
          ch.write(`ran ${info.command}\n`);
          ch.exit(0);
          ch.end();
        });
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

/** A prompter that answers from a script and records the questions. */
function scripted(answers: string[]): Prompter & { asked: string[]; said: string[] } {
  const asked: string[] = [];
  const said: string[] = [];
  return {
    asked,
    said,
    available: () => true,
    ask: async (q) => {
      asked.push(q);
      if (answers.length === 0) throw Object.assign(new Error('no more answers'), { code: 'CLI_ERR_PROMPT_ABORTED' });
      return answers.shift()!;
    },
    say: (t) => void said.push(t),
  };
}

function run(prompter: Prompter, identityFiles: string[] = []) {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += d));
  const p = runSsh({
    sock: connect(port, '127.0.0.1'),
    host: 'box',
    user: 'carol',
    hostKey: { algorithms: null, verify: () => {} },
    auth: { agentSocket: null, identityFiles, prompter },
    command: 'id',
    pty: false,
    stdin: Readable.from([]),
    stdout: out,
    stderr: new PassThrough(),
  });
  return { p, output: () => text };
}

describe('ssh authentication prompts', () => {
  it('asks for the password on the terminal when the server only takes passwords', async () => {
    allowed = { methods: ['password'], password: 'hunter22' };
    const prompter = scripted(['wrong', 'hunter22']);
    const r = run(prompter);
    expect(await r.p).toBe(0);
    expect(r.output()).toBe('ran id\n');
    expect(prompter.asked).toEqual(["carol@box's password: ", "carol@box's password: "]);
  });

  it('answers keyboard-interactive prompts, showing the instructions', async () => {
    allowed = { methods: ['keyboard-interactive'], code: '424242' };
    const prompter = scripted(['424242']);
    const r = run(prompter);
    expect(await r.p).toBe(0);
    expect(prompter.asked).toEqual(['Verification code: ']);
    expect(prompter.said.join('\n')).toContain('Type the code');
  });

  it('decrypts an encrypted key with the passphrase typed on the terminal', async () => {
    const key = join(dir, 'enc');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'open sesame', '-f', key]);
    const pub = utils.parseKey(readFileSync(`${key}.pub`));
    if (pub instanceof Error || Array.isArray(pub)) throw new Error('bad test key');
    allowed = { methods: ['publickey'], publicKey: pub };
    const prompter = scripted(['nope', 'open sesame']);
    const r = run(prompter, [key]);
    expect(await r.p).toBe(0);
    expect(prompter.asked).toEqual([`Enter passphrase for key '${key}': `, `Enter passphrase for key '${key}': `]);
  });

  it('without a terminal, password-only servers fail with what the server accepts and what was tried', async () => {
    allowed = { methods: ['password'], password: 'x' };
    const err = (await run(noPrompter).p.then(
      () => null,
      (e: CliError) => e,
    ))!;
    expect(err.code).toBe('CLI_ERR_SSH_AUTH_FAILED');
    expect(err.message).toContain('carol@box: permission denied (server accepts password; tried nothing)');
  });
});
