/**
 * `mssh cp` arguments: which operand is remote, on which machine (or machines), as which user.
 *
 *   SRC... DEST, each LOCAL_PATH or [user@]MACHINE:PATH (or, as DEST only, [user@]SELECTOR:PATH)
 *
 * Like scp, an operand is remote when it has a `:` before any `/` (so `./a:b` and `/x/a:b` are local
 * paths). The part before the `:` is one machine when it is a machine name (a-z, 0-9, -; `NAME.mssh`
 * too); it is a selector (fan-out push) when it has a glob character (`*`, `?`), a label pair (`=`) or a
 * comma: `web-*:/tmp/`, `env=prod,role=web:/tmp/`, `web-1,web-2:/tmp/` (terms as `mssh ls`: name globs,
 * any may match; label pairs, all must match). An empty remote path (`laptop:`) is the remote home;
 * relative paths are relative to it, and a leading `~/` is dropped.
 */
import { isValidHostName, parseHostFilter, type HostFilter } from '@mssh/protocol';
import { withLabelRules } from '@mssh/cli-kit';
import { cliError } from '../errors.js';

export type CpOperand =
  | { kind: 'local'; path: string }
  | { kind: 'remote'; user: string | null; host: string; path: string }
  | { kind: 'selector'; user: string | null; selector: string; words: string[]; filter: HostFilter; path: string };

export interface CpArgs {
  sources: string[];
  dest: string;
  recursive: boolean;
  preserve: boolean;
  quiet: boolean;
  login?: string;
  identity?: string;
  verbose?: boolean;
  connectTimeout?: string;
  /** Fan-out: every machine the user may reach (DEST is then `:PATH`). */
  all?: boolean;
  /** Fan-out: machines at once (default 10). */
  parallel?: string;
  /** Fan-out: a limit per machine, seconds (default 300). */
  timeout?: string;
}

export const CP_USAGE = 'Usage: mssh cp [-r] [-p] [-q] [-l USER] [-i KEY] SRC... DEST (one side [user@]host:path)';

/** The suffix `mssh config ssh` gives machine names for OpenSSH. */
const MSSH_SUFFIX = '.mssh';

/** The remote path as the SFTP server needs it: '' → '.', `~` → '.', `~/x` → `x` (home-relative). */
export function remotePath(p: string): string {
  if (p === '' || p === '~') return '.';
  if (p.startsWith('~/')) return p.slice(2) || '.';
  return p;
}

/** One operand → local path, one machine, or a selector. `all`: `:PATH` selects every machine. */
export function parseOperand(arg: string, all = false): CpOperand {
  const colon = arg.indexOf(':');
  const slash = arg.indexOf('/');
  if (colon < 0 || (slash >= 0 && slash < colon)) {
    if (arg === '') throw cliError('CLI_ERR_USAGE', 'an empty path was given', CP_USAGE);
    return { kind: 'local', path: arg };
  }
  const left = arg.slice(0, colon);
  const path = remotePath(arg.slice(colon + 1));
  const at = left.lastIndexOf('@');
  const user = at >= 0 ? left.slice(0, at) : null;
  if (user !== null && user === '')
    throw cliError('CLI_ERR_USAGE', `no user before @ in ${JSON.stringify(arg)}`, CP_USAGE);
  let host = (at >= 0 ? left.slice(at + 1) : left).toLowerCase();
  if (host === '') {
    if (all) return { kind: 'selector', user, selector: '--all', words: [], filter: { globs: [], labels: {} }, path };
    throw cliError(
      'CLI_ERR_USAGE',
      `no machine name before the ':' in ${JSON.stringify(arg)}`,
      'Write host:path (e.g. laptop:/tmp/), a selector (web-*:/tmp/, env=prod:/tmp/), or ./name for a local file with a colon.',
    );
  }
  if (all)
    throw cliError(
      'CLI_ERR_USAGE',
      `--all selects the machines itself; write the destination as :PATH, not ${JSON.stringify(arg)}`,
      'For example: mssh cp --all ./app.conf :/etc/app/',
    );
  if (/[*?,=]/.test(host)) {
    const terms = host.split(',');
    if (terms.some((t) => t === ''))
      throw cliError('CLI_ERR_USAGE', `an empty term in the selector ${JSON.stringify(host)}`, SELECTOR_HINT);
    const filter = withLabelRules(() => parseHostFilter(terms));
    for (const g of filter.globs) {
      if (!/^[a-z0-9*?-]+$/.test(g))
        throw cliError('CLI_ERR_USAGE', `${JSON.stringify(g)} is not a machine name glob`, SELECTOR_HINT);
    }
    return { kind: 'selector', user, selector: host, words: terms, filter, path };
  }
  if (host.endsWith(MSSH_SUFFIX) && host.length > MSSH_SUFFIX.length) host = host.slice(0, -MSSH_SUFFIX.length);
  if (!isValidHostName(host)) {
    throw cliError(
      'CLI_ERR_BAD_HOST_NAME',
      `${JSON.stringify(host.slice(0, 100))} is not a machine name`,
      'Machines are reached by their enrolled name (a-z, 0-9 and -; `mssh ls` lists them); write ./name for a local path with a colon.',
    );
  }
  return { kind: 'remote', user, host, path };
}

const SELECTOR_HINT =
  "A selector is comma-separated name globs ('web-*', any may match) and labels (env=prod, all must match), e.g. 'web-*,env=prod:/tmp/'.";

/** What `mssh cp` will do. */
export type CpPlan =
  | { mode: 'upload'; user: string; host: string; sources: string[]; dest: string }
  | { mode: 'download'; user: string; host: string; sources: string[]; dest: string }
  | {
      mode: 'push';
      user: string;
      /** As typed (`web-*,env=prod`), or `--all`. */
      selector: string;
      /** The selector's terms: name globs and label pairs, as `mssh ls` takes them. */
      words: string[];
      all: boolean;
      sources: string[];
      dest: string;
    };

/** The operands → one direction and one machine (or a selection, for a push), or a usage error. */
export function planCp(args: Pick<CpArgs, 'sources' | 'dest' | 'login' | 'all'>, localUser: string): CpPlan {
  if (args.sources.length === 0)
    throw cliError('CLI_ERR_USAGE', 'give at least one source and a destination', CP_USAGE);
  const dest = parseOperand(args.dest, args.all === true);
  if (args.all && dest.kind !== 'selector')
    throw cliError(
      'CLI_ERR_USAGE',
      '--all pushes to machines: the destination must be :PATH',
      'For example: mssh cp --all ./app.conf :/etc/app/',
    );
  const sources = args.sources.map((s) => parseOperand(s));
  const userOf = (u: string | null): string => {
    const user = args.login || u || localUser;
    if (!user) throw cliError('CLI_ERR_USAGE', 'no login user', 'Give one as user@host: or with -l USER.');
    return user;
  };
  const remoteSources = sources.filter((s) => s.kind !== 'local');
  for (const s of remoteSources) {
    if (s.kind === 'selector')
      throw cliError(
        'CLI_ERR_USAGE',
        `a selector (${s.selector}) can only be the destination`,
        'Copy from one machine at a time: mssh cp host:path DEST.',
      );
  }
  if (dest.kind === 'local') {
    if (remoteSources.length === 0)
      throw cliError(
        'CLI_ERR_USAGE',
        'neither side is remote',
        'Write the machine as host:path on one side, e.g. mssh cp ./notes.txt laptop:/tmp/ (for local copies use cp).',
      );
    if (remoteSources.length !== sources.length)
      throw cliError(
        'CLI_ERR_CP_REMOTE_TO_REMOTE',
        'the sources mix local paths and remote ones',
        'Copy in two commands: local sources to the machine, remote sources from it.',
      );
    const first = remoteSources[0] as Extract<CpOperand, { kind: 'remote' }>;
    for (const s of remoteSources as Extract<CpOperand, { kind: 'remote' }>[]) {
      if (s.host !== first.host || (s.user ?? '') !== (first.user ?? ''))
        throw cliError(
          'CLI_ERR_CP_REMOTE_TO_REMOTE',
          `the sources are on more than one machine (${first.host}, ${s.host})`,
          'Copy from one machine at a time.',
        );
    }
    return {
      mode: 'download',
      user: userOf(first.user),
      host: first.host,
      sources: remoteSources.map((s) => s.path),
      dest: dest.path,
    };
  }
  if (remoteSources.length > 0)
    throw cliError(
      'CLI_ERR_CP_REMOTE_TO_REMOTE',
      'both sides are remote: mssh cp copies between this machine and one (or, pushing, several) machines',
      'Copy through here in two steps: mssh cp a:FILE ./FILE && mssh cp ./FILE b:DIR/',
    );
  const localSources = sources.map((s) => (s as Extract<CpOperand, { kind: 'local' }>).path);
  if (dest.kind === 'remote') {
    return { mode: 'upload', user: userOf(dest.user), host: dest.host, sources: localSources, dest: dest.path };
  }
  return {
    mode: 'push',
    user: userOf(dest.user),
    selector: dest.selector,
    words: dest.words,
    all: args.all === true,
    sources: localSources,
    dest: dest.path,
  };
}
