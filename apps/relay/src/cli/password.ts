/**
 * Reading a new password: from stdin (--password-stdin, first line) or typed twice on a terminal with no echo.
 */
import { CliError } from '../errors.js';

const MAX = 1024;

export async function readPasswordFromStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > 64 * 1024) throw new CliError('the password on stdin is too long', `Give at most ${MAX} characters on one line.`);
    chunks.push(b);
    if (b.includes(0x0a)) break;
  }
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (line === '') throw new CliError('no password on stdin', 'Pipe the password on one line, e.g. `printf "%s\\n" "$PW" | mssh-relay user add NAME --password-stdin`.');
  return line;
}

/** Read one line from the terminal without echo. Ctrl-C aborts. */
export function promptHidden(prompt: string, stdin: NodeJS.ReadStream = process.stdin, out: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    out.write(prompt);
    let value = '';
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    stdin.resume();
    const done = (err: Error | null) => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      out.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new CliError('cancelled', 'Nothing was changed.'));
        if (ch === '\u0004') return done(null);
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ' && value.length < MAX) value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** A new password: --password-stdin, else typed twice on a terminal. */
export async function readNewPassword(opts: { fromStdin: boolean }): Promise<string> {
  if (opts.fromStdin) return readPasswordFromStdin();
  if (!process.stdin.isTTY) {
    throw new CliError('no terminal to type the password on', 'Pipe it instead: `... | mssh-relay user add NAME --password-stdin`.');
  }
  const a = await promptHidden('Password: ');
  const b = await promptHidden('Password (again): ');
  if (a !== b) throw new CliError('the two passwords differ', 'Run the command again and type the same password twice.');
  return a;
}
