/**
 * Reading a new password, the same way in `mssh admin users add|passwd` and `mssh-relay user add|passwd`:
 * the first line of stdin (--password-stdin), else typed twice, hidden, on the terminal.
 */
import type { Readable } from 'node:stream';
import { CliError } from './errors.js';
import { readFirstLine, type Prompter } from './prompt.js';

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export interface NewPasswordOptions {
  /** --password-stdin was given. */
  fromStdin: boolean;
  stdin: Readable;
  prompter: Prompter;
  /** Whose password (for the prompt). */
  name: string;
  /** The command to show in the hint when there is no terminal, e.g. `mssh-relay user add NAME`. */
  command: string;
}

/** A new password of 8 to 1024 characters, or a CliError (CLI_ERR_NO_TTY, CLI_ERR_BAD_PASSWORD, CLI_ERR_PROMPT_ABORTED). */
export async function readNewPassword(opts: NewPasswordOptions): Promise<string> {
  let password: string;
  if (opts.fromStdin) {
    password = await readFirstLine(opts.stdin);
  } else {
    if (!opts.prompter.available()) {
      throw new CliError(
        'CLI_ERR_NO_TTY',
        'there is no terminal to ask for the new password',
        `Pass it as the first line of stdin: printf '%s\\n' "$PW" | ${opts.command} --password-stdin`,
      );
    }
    password = await opts.prompter.ask(`New password for ${opts.name}: `, { echo: false });
    const again = await opts.prompter.ask('Repeat it: ', { echo: false });
    if (again !== password)
      throw new CliError(
        'CLI_ERR_BAD_PASSWORD',
        'the two passwords differ',
        'Run the command again and type the same password twice.',
      );
  }
  checkNewPassword(password);
  return password;
}

/** The length rule of a new password (the relay checks it too). */
export function checkNewPassword(password: string): void {
  const n = password.length; // UTF-16 units, as the relay's schema counts
  if (n < PASSWORD_MIN || n > PASSWORD_MAX) {
    throw new CliError(
      'CLI_ERR_BAD_PASSWORD',
      `the password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`,
      password === ''
        ? 'Give the password on the first line.'
        : `Choose one of ${PASSWORD_MIN} to ${PASSWORD_MAX} characters.`,
    );
  }
}
