import {
  CreateUserRequest, GrantRequest, UserName, formatAgentsTable, formatGrantsTable, formatUsersTable, sanitizeForTerminal,
} from '@mssh/protocol';
import { cliError } from '../errors.js';
import { readFirstLine } from '../terminal/prompt.js';
import { assertHostName } from '../ssh/ssh-via-relay.js';
import { printJson, println, withLoggedInRelay, type CliContext } from './context.js';

/** A new password: the first line of stdin (--password-stdin), else asked twice on the terminal. */
async function readNewPassword(ctx: CliContext, name: string, fromStdin: boolean): Promise<string> {
  if (fromStdin) return readFirstLine(ctx.io.stdin);
  if (!ctx.prompter.available()) throw cliError('CLI_ERR_NO_TTY', 'there is no terminal to ask for the new password', 'Pass it as the first line of stdin with --password-stdin.');
  const password = await ctx.prompter.ask(`New password for ${name}: `, { echo: false });
  const again = await ctx.prompter.ask('Repeat it: ', { echo: false });
  if (again !== password) throw cliError('CLI_ERR_BAD_PASSWORD', 'the two passwords differ', 'Run the command again.');
  return password;
}

/** `mssh admin users add NAME [--admin] [--password-stdin]` (needs an admin login). */
export async function adminUsersAdd(ctx: CliContext, args: { name: string; admin: boolean; passwordStdin: boolean }): Promise<number> {
  const password = await readNewPassword(ctx, args.name, args.passwordStdin);
  const req = CreateUserRequest.safeParse({ name: args.name, password, admin: args.admin });
  if (!req.success) {
    const nameBad = req.error.issues.some((i) => i.path[0] === 'name');
    if (nameBad) throw cliError('CLI_ERR_USAGE', `${JSON.stringify(args.name)} is not a valid user name`, 'User names are 1-64 characters of a-z, 0-9, ., _ and -, starting with a letter or digit.');
    throw cliError('CLI_ERR_BAD_PASSWORD', 'the password must be 8 to 1024 characters', 'Choose a longer password.');
  }
  return withLoggedInRelay(ctx, async (client) => {
    await client.createUser(req.data);
    println(ctx.io.stdout, `Created user ${args.name}${args.admin ? ' (admin)' : ''} on ${client.url}. They log in with \`mssh login --relay ${client.url} --user ${args.name}\`.`);
    if (!args.admin) println(ctx.io.stdout, `They reach no machine until granted: \`mssh admin grant ${args.name} 'PATTERN'\`.`);
    return 0;
  });
}

/**
 * `mssh admin agents enroll NAME [--json]`: a one-time enrolment token and the exact command to run on
 * the machine (with the relay fingerprint, so the agent pins the same certificate we did).
 */
export async function adminAgentsEnroll(ctx: CliContext, args: { name: string; json: boolean }): Promise<number> {
  const name = args.name.toLowerCase();
  assertHostName(name);
  return withLoggedInRelay(ctx, async (client) => {
    const res = await client.createEnrollToken(name);
    const token = sanitizeForTerminal(res.token);
    const expiresAt = sanitizeForTerminal(res.expiresAt);
    const command = `mssh-agent enroll --relay ${client.url} --token ${token} --name ${name} --relay-fingerprint ${client.conn.fingerprint}`;
    if (args.json) {
      printJson(ctx, { name, token, expiresAt, relay: client.url, relayFingerprint: client.conn.fingerprint, command });
      return 0;
    }
    println(ctx.io.stdout, `Enrolment token for ${name} (single use, valid until ${expiresAt}):`);
    println(ctx.io.stdout, `  ${token}`);
    println(ctx.io.stdout, 'On that machine, run:');
    println(ctx.io.stdout, `  ${command}`);
    println(ctx.io.stdout, '  mssh-agent run');
    return 0;
  });
}

// ------------------------------------------------------------------ users, grants, agents

function checkUserName(name: string, what = 'user name'): void {
  if (!UserName.safeParse(name).success) {
    throw cliError('CLI_ERR_USAGE', `${JSON.stringify(sanitizeForTerminal(name))} is not a valid ${what}`, `${what === 'role name' ? 'Role' : 'User'} names are 1-64 characters of a-z, 0-9, ., _ and -, starting with a letter or digit.`);
  }
}

/** `mssh admin users list [--json]`. */
export async function adminUsersList(ctx: CliContext, args: { json: boolean }): Promise<number> {
  const users = await withLoggedInRelay(ctx, (c) => c.listUsers());
  if (args.json) printJson(ctx, users);
  else ctx.io.stdout.write(formatUsersTable(users));
  return 0;
}

/** `mssh admin users disable NAME [--kill-sessions]`. */
export async function adminUsersDisable(ctx: CliContext, args: { name: string; killSessions: boolean }): Promise<number> {
  checkUserName(args.name);
  const u = await withLoggedInRelay(ctx, (c) => c.disableUser(args.name, args.killSessions));
  println(ctx.io.stdout, `Disabled ${sanitizeForTerminal(u.name)}: their logins stop working now.${args.killSessions ? ` Ended ${u.sessionsEnded} live session(s).` : ' Live sessions go on (add --kill-sessions to end them).'}`);
  return 0;
}

/** `mssh admin users enable NAME`. */
export async function adminUsersEnable(ctx: CliContext, args: { name: string }): Promise<number> {
  checkUserName(args.name);
  const u = await withLoggedInRelay(ctx, (c) => c.enableUser(args.name));
  println(ctx.io.stdout, `Enabled ${sanitizeForTerminal(u.name)}.`);
  return 0;
}

/** `mssh admin users passwd NAME [--password-stdin]`. */
export async function adminUsersPasswd(ctx: CliContext, args: { name: string; passwordStdin: boolean }): Promise<number> {
  checkUserName(args.name);
  const password = await readNewPassword(ctx, args.name, args.passwordStdin);
  if (password.length < 8 || password.length > 1024) throw cliError('CLI_ERR_BAD_PASSWORD', 'the password must be 8 to 1024 characters', 'Choose a longer password.');
  await withLoggedInRelay(ctx, (c) => c.setPassword(args.name, password));
  println(ctx.io.stdout, `Changed the password of ${args.name}.`);
  return 0;
}

/** `mssh admin users set-role NAME [ROLE]` (no ROLE: clear it). */
export async function adminUsersSetRole(ctx: CliContext, args: { name: string; role?: string }): Promise<number> {
  checkUserName(args.name);
  if (args.role !== undefined) checkUserName(args.role, 'role name');
  const u = await withLoggedInRelay(ctx, (c) => c.setRole(args.name, args.role ?? null));
  println(ctx.io.stdout, u.role ? `${sanitizeForTerminal(u.name)} now has the role ${sanitizeForTerminal(u.role)}.` : `${sanitizeForTerminal(u.name)} now has no role.`);
  return 0;
}

function grantRequest(args: { subject: string; pattern: string; role: boolean }): GrantRequest {
  checkUserName(args.subject, args.role ? 'role name' : 'user name');
  const r = GrantRequest.safeParse({ subjectKind: args.role ? 'role' : 'user', subject: args.subject, pattern: args.pattern });
  if (!r.success) {
    throw cliError('CLI_ERR_USAGE', `${JSON.stringify(sanitizeForTerminal(args.pattern))} is not a valid grant pattern`,
      "Patterns are host name characters (a-z, 0-9, -) with the wildcards * (any run) and ? (one character); quote them: mssh admin grant alice 'web-*'.");
  }
  return r.data;
}

/** `mssh admin grant [--role] SUBJECT PATTERN`. */
export async function adminGrant(ctx: CliContext, args: { subject: string; pattern: string; role: boolean }): Promise<number> {
  const req = grantRequest(args);
  const r = await withLoggedInRelay(ctx, (c) => c.addGrant(req));
  println(ctx.io.stdout, r.changed
    ? `Granted ${req.subjectKind} ${req.subject} access to ${req.pattern}.`
    : `${req.subjectKind} ${req.subject} already had access to ${req.pattern}.`);
  return 0;
}

/** `mssh admin revoke-grant [--role] SUBJECT PATTERN`. */
export async function adminRevokeGrant(ctx: CliContext, args: { subject: string; pattern: string; role: boolean }): Promise<number> {
  const req = grantRequest(args);
  await withLoggedInRelay(ctx, (c) => c.removeGrant(req));
  println(ctx.io.stdout, `Removed the grant of ${req.pattern} to ${req.subjectKind} ${req.subject}; new sessions are refused at once.`);
  return 0;
}

/** `mssh admin grants [--json]`. */
export async function adminGrants(ctx: CliContext, args: { json: boolean }): Promise<number> {
  const grants = await withLoggedInRelay(ctx, (c) => c.listGrants());
  if (args.json) printJson(ctx, grants);
  else if (grants.length === 0) println(ctx.io.stdout, "No grants: only admins reach machines. Add one with `mssh admin grant USER 'PATTERN'`.");
  else ctx.io.stdout.write(formatGrantsTable(grants));
  return 0;
}

/** `mssh admin agents list [--json]`. */
export async function adminAgentsList(ctx: CliContext, args: { json: boolean }): Promise<number> {
  const agents = await withLoggedInRelay(ctx, (c) => c.listAgents());
  if (args.json) printJson(ctx, agents);
  else ctx.io.stdout.write(formatAgentsTable(agents));
  return 0;
}

/** `mssh admin agents revoke NAME`. */
export async function adminAgentsRevoke(ctx: CliContext, args: { name: string }): Promise<number> {
  const name = args.name.toLowerCase();
  assertHostName(name);
  const a = await withLoggedInRelay(ctx, (c) => c.revokeAgent(name));
  println(ctx.io.stdout, `Revoked ${name}${a.wasOnline ? ' and dropped its connection and sessions' : ''}; it is refused from now on. To enrol it again: mssh admin agents enroll ${name}`);
  return 0;
}

/** `mssh admin agents forget NAME`. */
export async function adminAgentsForget(ctx: CliContext, args: { name: string }): Promise<number> {
  const name = args.name.toLowerCase();
  assertHostName(name);
  await withLoggedInRelay(ctx, (c) => c.forgetAgent(name));
  println(ctx.io.stdout, `Forgot ${name}; the name is free again.`);
  return 0;
}
