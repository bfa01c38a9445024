/**
 * The selection step of the many-machine commands: selector words (name globs and `key=value` labels, the
 * filters of `mssh ls`) or `--all` → the machines the user may reach (the relay lists only granted ones),
 * split into online (to run on) and offline (reported unreachable, never waited for).
 *
 *   words/--all ──parseLsFilter──▶ filter ──client.listHosts()──filterHosts──▶ { online, offline }
 */
import type { HostInfo } from '@mssh/protocol';
import { CliError, isCliError } from '@mssh/cli-kit';
import { cliError } from '../errors.js';
import { filterHosts, parseLsFilter, type LsFilter } from '../commands/ls.js';
import { MANY_EXIT } from './fan-out.js';

export interface MachineSelector {
  /** Name globs and label pairs, as `mssh ls` takes them (globs: any may match; labels: all must). */
  words: string[];
  /** Every machine the user may reach. */
  all: boolean;
}

export interface Selection {
  /** Connected machines, sorted by name. */
  online: HostInfo[];
  /** Selected machines whose agent is not connected, sorted by name. */
  offline: HostInfo[];
}

/** Selector words → a filter; usage and label errors name the rule (CLI_ERR_BAD_LABEL exits 2). */
export function parseSelector(sel: MachineSelector, usage: string): LsFilter {
  if (sel.all && sel.words.length > 0)
    throw cliError('CLI_ERR_USAGE', '--all and a selector contradict each other', `Give one of them. ${usage}`);
  if (!sel.all && sel.words.length === 0)
    throw cliError(
      'CLI_ERR_USAGE',
      'no machines selected',
      `Give name globs ('web-*'), labels (env=prod) or --all before --. ${usage}`,
    );
  try {
    return parseLsFilter(sel.words, false);
  } catch (e) {
    if (isCliError(e) && e.code === 'CLI_ERR_BAD_LABEL')
      throw new CliError(e.code, e.message, e.hint, { cause: e, exitCode: MANY_EXIT.NO_MATCH });
    throw e;
  }
}

/** The machines `filter` selects among `hosts`; CLI_ERR_NO_MATCH (exit 2) when none. */
export function splitSelection(hosts: HostInfo[], filter: LsFilter, describe: string): Selection {
  const chosen = filterHosts(hosts, filter).sort((a, b) => a.name.localeCompare(b.name));
  if (chosen.length === 0) {
    throw new CliError(
      'CLI_ERR_NO_MATCH',
      hosts.length === 0
        ? 'you may reach no machine at all'
        : `${describe} matches none of the ${hosts.length} machine${hosts.length === 1 ? '' : 's'} you may reach`,
      hosts.length === 0
        ? 'Ask an admin for a grant (`mssh admin grant USER PATTERN`).'
        : 'Run `mssh ls` with the same selector to check it; names are globs (web-*), labels KEY=VALUE.',
      { exitCode: MANY_EXIT.NO_MATCH },
    );
  }
  return { online: chosen.filter((h) => h.online), offline: chosen.filter((h) => !h.online) };
}

/** The selector as the user typed it, for messages. */
export function describeSelector(sel: MachineSelector): string {
  return sel.all ? '--all' : `the selector ${sel.words.map((w) => JSON.stringify(w)).join(' ')}`;
}

/** Parse, list what the relay lets this user reach, and split. */
export async function selectMachines(
  client: { listHosts(): Promise<HostInfo[]> },
  sel: MachineSelector,
  usage: string,
): Promise<Selection> {
  const filter = parseSelector(sel, usage);
  return splitSelection(await client.listHosts(), filter, describeSelector(sel));
}
