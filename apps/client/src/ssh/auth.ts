/**
 * Client authentication for the embedded ssh2 client, in this order: the ssh-agent's keys (when
 * $SSH_AUTH_SOCK is set and answers), then the -i keys, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa, then
 * keyboard-interactive and password prompts on the terminal (only when there is one). OpenSSH tries the
 * ~/.ssh defaults only when no -i is given; mssh tries them after the -i keys as well.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyAuthMethod, AuthHandlerMiddleware, BaseAgent, NextAuthHandler, ParsedKey } from 'ssh2';
import { loadSsh2 } from './ssh2-lazy.js';
import { sanitizeForTerminal, sanitizeTextBlock } from '@mssh/protocol';
import { cliError, isCliError, type CliError } from '../errors.js';
import type { Prompter } from '@mssh/cli-kit';

export interface SshAuthOptions {
  /** ssh-agent socket ($SSH_AUTH_SOCK), or null. */
  agentSocket: string | null;
  /** Private key files to try after the agent's keys, in order (identityFilesFor: the -i keys, then ~/.ssh/id_*). */
  identityFiles: string[];
  /** Asks for passphrases and passwords; `noPrompter` for none. */
  prompter: Prompter;
  /** Longest the ssh-agent may take to answer (AGENT_TIMEOUT_MS by default). */
  agentTimeoutMs?: number;
  /** Password attempts (OpenSSH's NumberOfPasswordPrompts). Default 3. */
  passwordAttempts?: number;
}

/** ~/.ssh/id_ed25519, id_ecdsa, id_rsa: the ones that exist. */
export function defaultIdentityFiles(home: string): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(home, '.ssh', n)).filter((p) => existsSync(p));
}

/** The key files to try, in order: the -i files as given, then the ~/.ssh/id_* that exist, each once. */
export function identityFilesFor(given: string[], home: string): string[] {
  return [...new Set([...given, ...defaultIdentityFiles(home)])];
}

/** Longest an ssh-agent may take to list its keys or sign: a socket that accepts and never answers must not hang login. */
export const AGENT_TIMEOUT_MS = 5_000;

/** ssh2's OpenSSH agent client, with every request bounded by `ms`; a late answer is dropped. */
export async function boundedAgent(socketPath: string, ms = AGENT_TIMEOUT_MS): Promise<BaseAgent<ParsedKey>> {
  const { OpenSSHAgent } = await loadSsh2();
  const bound = <A extends unknown[]>(what: string, cb: (err: Error | null | undefined, ...a: A) => void) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      cb(new Error(`the ssh-agent at ${socketPath} did not ${what} within ${ms / 1000} s`), ...([] as unknown as A));
    }, ms);
    return (err: Error | null | undefined, ...a: A) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cb(err, ...a);
    };
  };
  class BoundedAgent extends OpenSSHAgent {
    override getIdentities(cb: Parameters<InstanceType<typeof OpenSSHAgent>['getIdentities']>[0]): void {
      super.getIdentities(bound('list its keys', cb));
    }
    override sign(
      pubKey: ParsedKey | Buffer | string,
      data: Buffer,
      options?: unknown,
      cb?: (err: Error | null | undefined, signature?: Buffer) => void,
    ): boolean {
      const callback = typeof options === 'function' ? (options as typeof cb) : cb;
      return super.sign(pubKey, data, {}, callback ? bound('sign', callback) : undefined);
    }
  }
  return new BoundedAgent(socketPath);
}

/**
 * Read a private key file; prompt for its passphrase when it is encrypted (up to 3 tries). Returns null
 * when the key cannot be used (no terminal for the passphrase); throws CLI_ERR_KEY_FILE for a file that is
 * not a private key or cannot be read.
 */
export async function loadPrivateKey(
  path: string,
  prompter: Prompter,
): Promise<{ key: Buffer; passphrase?: string } | null> {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw cliError(
      'CLI_ERR_KEY_FILE',
      `cannot read the key file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      'Check the path given to -i.',
      e,
    );
  }
  const { utils } = await loadSsh2();
  const first = utils.parseKey(data);
  if (!(first instanceof Error)) return { key: data };
  if (!/no passphrase given/i.test(first.message)) {
    throw cliError(
      'CLI_ERR_KEY_FILE',
      `${path} is not a private key this client can use (${first.message})`,
      'Give an OpenSSH private key with -i (not the .pub file).',
    );
  }
  if (!prompter.available()) return null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const passphrase = await prompter.ask(`Enter passphrase for key '${path}': `, { echo: false });
    const parsed = utils.parseKey(data, passphrase);
    if (!(parsed instanceof Error)) return { key: data, passphrase };
    prompter.say('Bad passphrase, try again.');
  }
  throw cliError(
    'CLI_ERR_KEY_FILE',
    `wrong passphrase for ${path}`,
    'Check the passphrase, or load the key into ssh-agent (`ssh-add`).',
  );
}

export interface AuthState {
  /** Methods tried so far, for the failure message. */
  tried: string[];
  /** The methods the server said it accepts, from its last refusal. */
  serverMethods: string[] | null;
  /** A prompt was cancelled or a key file failed: the reason to report instead of "permission denied". */
  fatal: CliError | null;
}

/**
 * An ssh2 authHandler trying the methods in order. It stops (returns false) when nothing is left; the
 * caller reports `state`.
 */
export function createAuthHandler(
  username: string,
  host: string,
  opts: SshAuthOptions,
  state: AuthState,
): AuthHandlerMiddleware {
  type Step = () => Promise<AnyAuthMethod | null>;
  const steps: Step[] = [];
  const allows = (method: string) => state.serverMethods === null || state.serverMethods.includes(method);

  if (opts.agentSocket && existsSync(opts.agentSocket)) {
    steps.push(async () => {
      if (!allows('publickey')) return null;
      state.tried.push('ssh-agent');
      return { type: 'agent', username, agent: await boundedAgent(opts.agentSocket!, opts.agentTimeoutMs) };
    });
  }
  for (const file of opts.identityFiles) {
    steps.push(async () => {
      if (!allows('publickey')) return null;
      const loaded = await loadPrivateKey(file, opts.prompter);
      if (!loaded) return null;
      state.tried.push(file);
      return { type: 'publickey', username, key: loaded.key, passphrase: loaded.passphrase };
    });
  }
  // Before any prompt (or giving up), learn which methods the server takes; OpenSSH sends "none" first
  // for the same reason.
  steps.push(async () => {
    if (state.serverMethods !== null) return null;
    return { type: 'none', username };
  });
  steps.push(async () => {
    if (!opts.prompter.available() || state.serverMethods === null || !allows('keyboard-interactive')) return null;
    state.tried.push('keyboard-interactive');
    return {
      type: 'keyboard-interactive',
      username,
      prompt: (name, instructions, _lang, prompts, finish) => {
        void (async () => {
          const text = [name, instructions]
            .map((s) => sanitizeTextBlock(s ?? '').trim())
            .filter(Boolean)
            .join('\n');
          if (text) opts.prompter.say(text);
          const answers: string[] = [];
          for (const p of prompts) {
            answers.push(await opts.prompter.ask(sanitizeForTerminal(p.prompt), { echo: p.echo === true }));
          }
          finish(answers);
        })().catch((e: unknown) => {
          state.fatal = isCliError(e) ? e : cliError('CLI_ERR_PROMPT_ABORTED', 'cancelled at the prompt', '', e);
          finish([]);
        });
      },
    };
  });
  const attempts = opts.passwordAttempts ?? 3;
  for (let i = 0; i < attempts; i++) {
    steps.push(async () => {
      if (!opts.prompter.available() || state.serverMethods === null || !allows('password')) return null;
      const password = await opts.prompter.ask(`${username}@${host}'s password: `, { echo: false });
      if (i === 0) state.tried.push('password');
      return { type: 'password', username, password };
    });
  }

  let next = 0;
  return (methodsLeft: string[] | null, _partial: boolean | null, callback: NextAuthHandler) => {
    if (methodsLeft) state.serverMethods = methodsLeft;
    void (async () => {
      while (next < steps.length && state.fatal === null) {
        const step = steps[next++]!;
        try {
          const method = await step();
          if (method) return callback(method);
        } catch (e) {
          state.fatal = isCliError(e) ? e : cliError('CLI_ERR_SSH_AUTH_FAILED', (e as Error).message, '', e);
        }
      }
      callback(false as unknown as AnyAuthMethod);
    })();
  };
}
