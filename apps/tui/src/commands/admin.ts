import { CreateUserRequest, sanitizeForTerminal } from '@mssh/protocol';
import { cliError } from '../errors.js';
import { readFirstLine } from '../terminal/prompt.js';
import { assertHostName } from '../ssh/ssh-via-relay.js';
import { openLoggedInRelay, println, type CliContext } from './context.js';

/** `mssh admin users add NAME [--admin] [--password-stdin]` (needs an admin login). */
export async function adminUsersAdd(ctx: CliContext, args: { name: string; admin: boolean; passwordStdin: boolean }): Promise<number> {
  let password: string;
  if (args.passwordStdin) {
    password = await readFirstLine(ctx.io.stdin);
  } else {
    if (!ctx.prompter.available()) throw cliError('CLI_ERR_NO_TTY', 'there is no terminal to ask for the new password', 'Pass it as the first line of stdin with --password-stdin.');
    password = await ctx.prompter.ask(`New password for ${args.name}: `, { echo: false });
    const again = await ctx.prompter.ask('Repeat it: ', { echo: false });
    if (again !== password) throw cliError('CLI_ERR_BAD_PASSWORD', 'the two passwords differ', 'Run the command again.');
  }
  const req = CreateUserRequest.safeParse({ name: args.name, password, admin: args.admin });
  if (!req.success) {
    const nameBad = req.error.issues.some((i) => i.path[0] === 'name');
    if (nameBad) throw cliError('CLI_ERR_USAGE', `${JSON.stringify(args.name)} is not a valid user name`, 'User names are 1-64 characters of a-z, 0-9, ., _ and -, starting with a letter or digit.');
    throw cliError('CLI_ERR_BAD_PASSWORD', 'the password must be 8 to 1024 characters', 'Choose a longer password.');
  }
  const { client } = await openLoggedInRelay(ctx);
  try {
    await client.createUser(req.data);
    println(ctx.io.stdout, `Created user ${args.name}${args.admin ? ' (admin)' : ''} on ${client.url}. They log in with \`mssh login --relay ${client.url} --user ${args.name}\`.`);
    return 0;
  } finally {
    await client.close();
  }
}

/**
 * `mssh admin agents enroll NAME [--json]`: a one-time enrolment token and the exact command to run on
 * the machine (with the relay fingerprint, so the agent pins the same certificate we did).
 */
export async function adminAgentsEnroll(ctx: CliContext, args: { name: string; json: boolean }): Promise<number> {
  const name = args.name.toLowerCase();
  assertHostName(name);
  const { client } = await openLoggedInRelay(ctx);
  try {
    const res = await client.createEnrollToken(name);
    const token = sanitizeForTerminal(res.token);
    const expiresAt = sanitizeForTerminal(res.expiresAt);
    const command = `mssh-agent enroll --relay ${client.url} --token ${token} --name ${name} --relay-fingerprint ${client.conn.fingerprint}`;
    if (args.json) {
      println(ctx.io.stdout, JSON.stringify({ name, token, expiresAt, relay: client.url, relayFingerprint: client.conn.fingerprint, command }, null, 2));
      return 0;
    }
    println(ctx.io.stdout, `Enrolment token for ${name} (single use, valid until ${expiresAt}):`);
    println(ctx.io.stdout, `  ${token}`);
    println(ctx.io.stdout, 'On that machine, run:');
    println(ctx.io.stdout, `  ${command}`);
    println(ctx.io.stdout, '  mssh-agent run');
    return 0;
  } finally {
    await client.close();
  }
}
