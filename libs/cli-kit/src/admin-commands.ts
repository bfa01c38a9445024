/**
 * The admin commands, defined once for `mssh-relay user|grant|agent ...` (through the admin socket or on
 * the database) and `mssh admin ...` (through the REST API with an admin login). Each program supplies
 * the ops, how it spells its commands in hints, and where to print; the validation, the messages and the
 * output are the same.
 *
 *   mssh-relay user add NAME --\                       /--> admin socket / database (mssh-relay)
 *                               >-- AdminCommands --- ops
 *   mssh admin users add NAME --/                       \--> REST /v1/admin/... (mssh)
 */
import type { Readable } from 'node:stream';
import {
  GrantRequest,
  HostName,
  LabelSyntaxError,
  UserName,
  formatLabels,
  formatSelector,
  parseLabelEdits,
  parseLabels,
  parseSelector,
  type LabelAgentRequest,
  type LabelAgentResponse,
  type Labels,
  formatAgentsTable,
  formatRelaysTable,
  formatGrantsTable,
  formatUsersTable,
  jsonForTerminal,
  sanitizeForTerminal,
  type AgentAdminInfo,
  type DisableUserResponse,
  type FleetRelayInfo,
  type GrantInfo,
  type RevokeAgentResponse,
  type UserInfo,
} from '@mssh/protocol';
import { CliError } from './errors.js';
import { readNewPassword } from './password.js';
import type { Prompter } from './prompt.js';

/** What the admin commands need; the relay's AdminOps and mssh's RelayClient both provide it. */
export interface AdminCommandOps {
  /** `database` when a relay's CLI works on the database because the relay is not running. */
  readonly via?: string;
  createUser(req: { name: string; password: string; admin: boolean }): Promise<unknown>;
  listUsers(): Promise<UserInfo[]>;
  disableUser(name: string, killSessions: boolean): Promise<DisableUserResponse>;
  enableUser(name: string): Promise<UserInfo>;
  setPassword(name: string, password: string): Promise<unknown>;
  setRole(name: string, role: string | null): Promise<UserInfo>;
  addGrant(req: GrantRequest): Promise<{ changed: boolean }>;
  removeGrant(req: GrantRequest): Promise<unknown>;
  listGrants(): Promise<GrantInfo[]>;
  listAgents(): Promise<AgentAdminInfo[]>;
  revokeAgent(name: string): Promise<RevokeAgentResponse>;
  labelAgent(name: string, req: LabelAgentRequest): Promise<LabelAgentResponse>;
  forgetAgent(name: string): Promise<{ wasOnline?: boolean } | void>;
  /** The relays of the fleet (one, without a fleet). */
  listRelays(): Promise<FleetRelayInfo[]>;
}

export interface AdminCommandsOptions<O extends AdminCommandOps> {
  /** Runs `fn` on the program's ops and closes them whatever happens. */
  withOps<T>(fn: (ops: O) => Promise<T>): Promise<T>;
  stdout: { write(s: string): unknown };
  password: { stdin: Readable; prompter: Prompter };
  /** How this program spells the commands hints name: e.g. `mssh-relay grant` or `mssh admin grant`. */
  spell: { grant: string; enroll: string; usersAdd: string; usersPasswd: string };
  /** Extra lines after a user was created (mssh: how they log in), given the ops it was created with. */
  afterCreate?: (ops: O, name: string) => string[];
}

export interface AdminCommands {
  usersAdd(a: { name: string; admin: boolean; passwordStdin: boolean }): Promise<void>;
  usersList(a: { json: boolean }): Promise<void>;
  usersDisable(a: { name: string; killSessions: boolean }): Promise<void>;
  usersEnable(a: { name: string }): Promise<void>;
  usersPasswd(a: { name: string; passwordStdin: boolean }): Promise<void>;
  usersSetRole(a: { name: string; role?: string }): Promise<void>;
  grant(a: GrantArgs): Promise<void>;
  revokeGrant(a: GrantArgs): Promise<void>;
  /** `agents label NAME env=staging role-`: set and remove labels. */
  agentsLabel(a: { name: string; edits: string[]; json: boolean }): Promise<void>;
  grants(a: { json: boolean }): Promise<void>;
  agentsList(a: { json: boolean }): Promise<void>;
  agentsRevoke(a: { name: string }): Promise<void>;
  agentsForget(a: { name: string }): Promise<void>;
  relays(a: { json: boolean }): Promise<void>;
}

/** A grant names a host glob (`pattern`) or a label selector (`labels`, from --labels), not both. */
export interface GrantArgs {
  subject: string;
  pattern?: string;
  labels?: string;
  role: boolean;
}

const q = (s: string) => JSON.stringify(sanitizeForTerminal(s));

const LABEL_RULES_HINT =
  'Labels are key=value: keys 1-63 of a-z, 0-9, ., _, / and - (starting with a letter or digit), values 1-63 printable characters without spaces or commas, at most 32 per machine.';

/** Run a label parser; its LabelSyntaxError becomes CLI_ERR_BAD_LABEL (the message names the rule). */
export function withLabelRules<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LabelSyntaxError)
      throw new CliError('CLI_ERR_BAD_LABEL', sanitizeForTerminal(e.message), LABEL_RULES_HINT);
    throw e;
  }
}

/** Repeated `--label key=value` flags as labels, or CLI_ERR_BAD_LABEL naming the rule. */
export function labelFlags(args: readonly string[] | undefined): Labels {
  return withLabelRules(() => parseLabels(args ?? []));
}

/** A user or role name, or a usage error naming the rule. */
export function checkUserName(name: string, what: 'user name' | 'role name' = 'user name'): string {
  if (!UserName.safeParse(name).success) {
    throw new CliError(
      'CLI_ERR_USAGE',
      `${q(name)} is not a valid ${what}`,
      `${what === 'role name' ? 'Role' : 'User'} names are 1-64 characters of a-z, 0-9, ., _ and -, starting with a letter or digit.`,
    );
  }
  return name;
}

/** A machine name (lower-cased), or CLI_ERR_BAD_HOST_NAME. */
export function checkHostName(name: string): string {
  const lower = name.toLowerCase();
  if (!HostName.safeParse(lower).success) {
    throw new CliError(
      'CLI_ERR_BAD_HOST_NAME',
      `${q(name.slice(0, 100))} is not a machine name`,
      'Machine names are 1-63 characters of a-z, 0-9 and -, as enrolled.',
    );
  }
  return lower;
}

/** A grant request, or a usage error saying what a pattern may contain. */
export function grantRequest(a: GrantArgs, grantCommand: string): GrantRequest {
  checkUserName(a.subject, a.role ? 'role name' : 'user name');
  if ((a.pattern === undefined) === (a.labels === undefined)) {
    throw new CliError(
      'CLI_ERR_USAGE',
      a.pattern === undefined ? 'name a host pattern or --labels' : 'give a host pattern or --labels, not both',
      `E.g. ${grantCommand} alice 'web-*', or ${grantCommand} alice --labels env=staging,role=web.`,
    );
  }
  if (a.labels !== undefined) {
    const labels = withLabelRules(() => formatSelector(parseSelector(a.labels!)));
    return { subjectKind: a.role ? 'role' : 'user', subject: a.subject, labels };
  }
  const r = GrantRequest.safeParse({ subjectKind: a.role ? 'role' : 'user', subject: a.subject, pattern: a.pattern });
  if (!r.success) {
    throw new CliError(
      'CLI_ERR_USAGE',
      `${q(a.pattern ?? '')} is not a valid grant pattern`,
      `Patterns are host name characters (a-z, 0-9, -) with the wildcards * (any run) and ? (one character); quote them: ${grantCommand} alice 'web-*'.`,
    );
  }
  return r.data;
}

export function createAdminCommands<O extends AdminCommandOps>(o: AdminCommandsOptions<O>): AdminCommands {
  const println = (line: string) => o.stdout.write(`${line}\n`);
  const printJson = (v: unknown) => println(jsonForTerminal(v, 2));
  const subject = (req: GrantRequest) => `${req.subjectKind} ${q(req.subject)}`;
  const target = (req: GrantRequest) =>
    req.labels !== undefined ? `the machines labelled ${req.labels}` : (req.pattern ?? '');
  const newPassword = (name: string, fromStdin: boolean, command: string) =>
    readNewPassword({
      fromStdin,
      name,
      command: `${command} ${name}`,
      stdin: o.password.stdin,
      prompter: o.password.prompter,
    });

  return {
    async usersAdd(a) {
      checkUserName(a.name);
      const password = await newPassword(a.name, a.passwordStdin, o.spell.usersAdd);
      const extra = await o.withOps(async (ops) => {
        await ops.createUser({ name: a.name, password, admin: a.admin });
        return o.afterCreate?.(ops, a.name) ?? [];
      });
      println(`Created user ${q(a.name)}${a.admin ? ' (admin)' : ''}.`);
      for (const l of extra) println(l);
      if (!a.admin) println(`They reach no machine until granted: ${o.spell.grant} ${a.name} 'PATTERN'`);
    },
    async usersList(a) {
      const users = await o.withOps((ops) => ops.listUsers());
      if (a.json) printJson(users);
      else o.stdout.write(formatUsersTable(users));
    },
    async usersDisable(a) {
      checkUserName(a.name);
      const { u, via } = await o.withOps(async (ops) => ({
        u: await ops.disableUser(a.name, a.killSessions),
        via: ops.via,
      }));
      println(
        `Disabled user ${q(u.name)}: their logins stop working now.${a.killSessions ? ` Ended ${u.sessionsEnded} live session(s).` : ' Live sessions go on (add --kill-sessions to end them).'}`,
      );
      if (a.killSessions && via === 'database')
        println('(The relay is not running, so there were no live sessions to end.)');
    },
    async usersEnable(a) {
      checkUserName(a.name);
      const u = await o.withOps((ops) => ops.enableUser(a.name));
      println(`Enabled user ${q(u.name)}.`);
    },
    async usersPasswd(a) {
      checkUserName(a.name);
      const password = await newPassword(a.name, a.passwordStdin, o.spell.usersPasswd);
      await o.withOps((ops) => ops.setPassword(a.name, password));
      println(`Changed the password of ${q(a.name)}.`);
    },
    async usersSetRole(a) {
      checkUserName(a.name);
      if (a.role !== undefined) checkUserName(a.role, 'role name');
      const u = await o.withOps((ops) => ops.setRole(a.name, a.role ?? null));
      println(u.role ? `User ${q(u.name)} now has the role ${q(u.role)}.` : `User ${q(u.name)} now has no role.`);
    },
    async grant(a) {
      const req = grantRequest(a, o.spell.grant);
      const r = await o.withOps((ops) => ops.addGrant(req));
      println(
        r.changed
          ? `Granted ${subject(req)} access to ${target(req)}.`
          : `${subject(req)} already had access to ${target(req)}.`,
      );
    },
    async revokeGrant(a) {
      const req = grantRequest(a, o.spell.grant);
      await o.withOps((ops) => ops.removeGrant(req));
      println(`Removed the grant of ${target(req)} to ${subject(req)}; new sessions are refused at once.`);
    },
    async grants(a) {
      const grants = await o.withOps((ops) => ops.listGrants());
      if (a.json) printJson(grants);
      else if (grants.length === 0)
        println(`No grants: only admins reach machines. Add one with \`${o.spell.grant} USER 'PATTERN'\`.`);
      else o.stdout.write(formatGrantsTable(grants));
    },
    async agentsList(a) {
      const agents = await o.withOps((ops) => ops.listAgents());
      if (a.json) printJson(agents);
      else o.stdout.write(formatAgentsTable(agents));
    },
    async relays(a) {
      const relays = await o.withOps((ops) => ops.listRelays());
      if (a.json) printJson(relays);
      else o.stdout.write(formatRelaysTable(relays));
    },
    async agentsRevoke(a) {
      const name = checkHostName(a.name);
      const r = await o.withOps((ops) => ops.revokeAgent(name));
      println(
        `Revoked ${q(name)}${r.wasOnline ? ' and dropped its connection and sessions' : ''}; it is refused from now on. To enrol it again: ${o.spell.enroll} ${name}`,
      );
    },
    async agentsLabel(a) {
      const name = checkHostName(a.name);
      if (a.edits.length === 0)
        throw new CliError('CLI_ERR_USAGE', 'name at least one label to set (key=value) or remove (key-)');
      const edits = withLabelRules(() => parseLabelEdits(a.edits));
      const r = await o.withOps((ops) => ops.labelAgent(name, { set: edits.set, remove: edits.remove }));
      if (a.json) {
        printJson(r);
        return;
      }
      println(
        `Labels of ${q(name)}: ${sanitizeForTerminal(formatLabels(r.labels))} (were ${sanitizeForTerminal(formatLabels(r.before))}).`,
      );
      if (r.sessionsEnded > 0)
        println(`Ended ${r.sessionsEnded} running session(s) that no grant matches any more (reason grant_revoked).`);
    },
    async agentsForget(a) {
      const name = checkHostName(a.name);
      const r = await o.withOps((ops) => ops.forgetAgent(name));
      println(`Forgot ${q(name)}${r?.wasOnline ? ' and dropped its connection' : ''}; the name is free again.`);
    },
  };
}
