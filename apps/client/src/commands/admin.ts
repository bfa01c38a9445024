/**
 * `mssh admin ...`: the admin commands of @mssh/cli-kit (shared with `mssh-relay`) on the logged-in
 * relay's REST API, and `mssh admin agents enroll` (its output names this client's relay and pin).
 */
import { createAdminCommands, installOneLiner, labelFlags, type AdminCommands, type GrantArgs } from '@mssh/cli-kit';
import { formatLabels, sanitizeForTerminal } from '@mssh/protocol';
import { assertHostName } from '../ssh/ssh-via-relay.js';
import type { RelayClient } from '../relay-client/relay-client.js';
import { printJson, println, withLoggedInRelay, type CliContext } from './context.js';

/**
 * `mssh admin agents enroll NAME [--json]`: a one-time enrolment token and the exact command to run on
 * the machine (with the relay fingerprint, so the agent pins the same certificate we did).
 */
export async function adminAgentsEnroll(
  ctx: CliContext,
  args: { name: string; json: boolean; labels?: string[] },
): Promise<number> {
  const name = args.name.toLowerCase();
  assertHostName(name);
  const labels = labelFlags(args.labels);
  return withLoggedInRelay(ctx, async (client) => {
    const res = await client.createEnrollToken(name, labels);
    const token = sanitizeForTerminal(res.token);
    const expiresAt = sanitizeForTerminal(res.expiresAt);
    const command = `mssh-agent enroll --relay ${client.url} --token ${token} --name ${name} --relay-fingerprint ${client.conn.fingerprint}`;
    const pin = client.conn.publicKeyPin;
    const install = installOneLiner({ relayUrl: client.url, publicKeyPin: pin, token, name });
    if (args.json) {
      printJson(ctx, {
        name,
        token,
        expiresAt,
        relay: client.url,
        relayFingerprint: client.conn.fingerprint,
        relayPublicKeyPin: pin,
        command,
        install,
        labels,
      });
      return 0;
    }
    println(ctx.io.stdout, `Enrolment token for ${name} (single use, valid until ${expiresAt}):`);
    if (Object.keys(labels).length > 0)
      println(ctx.io.stdout, `  the machine is labelled ${sanitizeForTerminal(formatLabels(labels))} when it enrols`);
    println(ctx.io.stdout, `  ${token}`);
    println(ctx.io.stdout, 'On that machine, run:');
    println(ctx.io.stdout, `  ${command}`);
    println(ctx.io.stdout, '  mssh-agent run');
    println(
      ctx.io.stdout,
      'Or, on a Debian/Ubuntu machine without Node.js, this one line downloads the agent pinned to',
    );
    println(
      ctx.io.stdout,
      "the relay's key, checks it, installs it in /opt/mssh-agent (--prefix DIR), enrols it and starts it:",
    );
    println(ctx.io.stdout, `  ${install}`);
    return 0;
  });
}

// ------------------------------------------------------------------ users, grants, agents

function admin(ctx: CliContext): AdminCommands {
  return createAdminCommands<RelayClient>({
    withOps: (fn) => withLoggedInRelay(ctx, (client) => fn(client)),
    stdout: ctx.io.stdout,
    password: { stdin: ctx.io.stdin, prompter: ctx.prompter },
    spell: {
      grant: 'mssh admin grant',
      enroll: 'mssh admin agents enroll',
      usersAdd: 'mssh admin users add',
      usersPasswd: 'mssh admin users passwd',
    },
    afterCreate: (client, name) => [`They log in with \`mssh login --relay ${client.url} --user ${name}\`.`],
  });
}

/** Run one shared admin command; its exit code is 0 (failures throw). */
const ok = async (p: Promise<void>): Promise<number> => {
  await p;
  return 0;
};

export const adminUsersAdd = (ctx: CliContext, a: { name: string; admin: boolean; passwordStdin: boolean }) =>
  ok(admin(ctx).usersAdd(a));
export const adminUsersList = (ctx: CliContext, a: { json: boolean }) => ok(admin(ctx).usersList(a));
export const adminUsersDisable = (ctx: CliContext, a: { name: string; killSessions: boolean }) =>
  ok(admin(ctx).usersDisable(a));
export const adminUsersEnable = (ctx: CliContext, a: { name: string }) => ok(admin(ctx).usersEnable(a));
export const adminUsersPasswd = (ctx: CliContext, a: { name: string; passwordStdin: boolean }) =>
  ok(admin(ctx).usersPasswd(a));
export const adminUsersSetRole = (ctx: CliContext, a: { name: string; role?: string }) =>
  ok(admin(ctx).usersSetRole(a));
export const adminGrant = (ctx: CliContext, a: GrantArgs) => ok(admin(ctx).grant(a));
export const adminRevokeGrant = (ctx: CliContext, a: GrantArgs) => ok(admin(ctx).revokeGrant(a));
export const adminAgentsLabel = (ctx: CliContext, a: { name: string; edits: string[]; json: boolean }) =>
  ok(admin(ctx).agentsLabel(a));
export const adminGrants = (ctx: CliContext, a: { json: boolean }) => ok(admin(ctx).grants(a));
export const adminRelays = (ctx: CliContext, a: { json: boolean }) => ok(admin(ctx).relays(a));
export const adminAgentsList = (ctx: CliContext, a: { json: boolean }) => ok(admin(ctx).agentsList(a));
export const adminAgentsRevoke = (ctx: CliContext, a: { name: string }) => ok(admin(ctx).agentsRevoke(a));
export const adminAgentsForget = (ctx: CliContext, a: { name: string }) => ok(admin(ctx).agentsForget(a));
