/**
 * Asking the user for secrets. Prompts go to the controlling terminal (/dev/tty), never to stdin/stdout,
 * so they work while stdin and stdout carry data (`mssh ssh host -- cmd < file`, ProxyCommand).
 */
import { closeSync, openSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import { CliError } from './errors.js';

export interface Prompter {
  /** True when there is a terminal to ask on. */
  available(): boolean;
  /** Ask one question; `echo: false` hides what is typed. Rejects with CLI_ERR_PROMPT_ABORTED on Ctrl-C/Ctrl-D. */
  ask(question: string, opts: { echo: boolean }): Promise<string>;
  /** Show text on the terminal (e.g. keyboard-interactive instructions). */
  say(text: string): void;
}

/** A Prompter for contexts with no terminal: never available. */
export const noPrompter: Prompter = {
  available: () => false,
  ask: () => Promise.reject(new CliError('CLI_ERR_NO_TTY', 'there is no terminal to ask on', '')),
  say: () => {},
};

const MAX_ANSWER = 4096;

/** Prompts on /dev/tty with the terminal in raw mode (no echo for secrets). */
export class TtyPrompter implements Prompter {
  private avail: boolean | null = null;
  constructor(private readonly device = '/dev/tty') {}

  available(): boolean {
    if (this.avail === null) {
      try {
        closeSync(openSync(this.device, 'r+'));
        this.avail = true;
      } catch {
        this.avail = false;
      }
    }
    return this.avail;
  }

  say(text: string): void {
    let fd: number;
    try {
      fd = openSync(this.device, 'w');
    } catch {
      return;
    }
    const out = new WriteStream(fd);
    out.write(text.endsWith('\n') ? text.replace(/\n/g, '\r\n') : `${text.replace(/\n/g, '\r\n')}\r\n`);
    out.destroy();
  }

  ask(question: string, opts: { echo: boolean }): Promise<string> {
    let rfd: number;
    let wfd: number;
    try {
      rfd = openSync(this.device, 'r');
      wfd = openSync(this.device, 'w');
    } catch (e) {
      return Promise.reject(new CliError('CLI_ERR_NO_TTY', 'there is no terminal to ask on', '', { cause: e }));
    }
    const input = new ReadStream(rfd);
    const output = new WriteStream(wfd);
    output.write(question);
    input.setRawMode(true);
    const decoder = new StringDecoder('utf8');
    let answer = '';
    return new Promise<string>((resolve, reject) => {
      const finish = (err: Error | null) => {
        input.removeListener('data', onData);
        output.write('\r\n');
        if (err) reject(err);
        else resolve(answer);
      };
      const onData = (chunk: Buffer) => {
        for (const ch of decoder.write(chunk)) {
          if (ch === '\r' || ch === '\n') return finish(null);
          if (ch === '\u0003' || (ch === '\u0004' && answer === '')) {
            return finish(new CliError('CLI_ERR_PROMPT_ABORTED', 'cancelled at the prompt', ''));
          }
          if (ch === '\u007f' || ch === '\b') {
            if (answer.length > 0) {
              answer = Array.from(answer).slice(0, -1).join('');
              if (opts.echo) output.write('\b \b');
            }
          } else if (ch === '\u0015') {
            if (opts.echo) output.write('\b \b'.repeat(Array.from(answer).length));
            answer = '';
          } else if (ch >= ' ' && answer.length < MAX_ANSWER) {
            answer += ch;
            if (opts.echo) output.write(ch);
          }
        }
      };
      input.on('data', onData);
    }).finally(() => {
      try {
        input.setRawMode(false);
      } catch {
        // terminal already gone
      }
      input.destroy();
      output.destroy();
    });
  }
}

/**
 * The first line of a stream (for --password-stdin): everything up to the first newline, without the
 * line ending. Reads at most 64 KiB.
 */
export async function readFirstLine(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const nl = b.indexOf(0x0a);
    if (nl >= 0) {
      chunks.push(b.subarray(0, nl));
      break;
    }
    chunks.push(b);
    total += b.length;
    if (total > 64 * 1024) break;
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
}
