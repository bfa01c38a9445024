/**
 * `mssh completion bash|zsh|fish`: a shell completion script generated from the commander program itself,
 * so that it completes exactly the commands and options that exist. Machine names (after `mssh ssh`, `mssh exec`,
 * `mssh proxy`, `mssh known-hosts forget`; also `user@NAME`) come from `mssh __complete hosts`
 * (host-cache.ts: a cache refreshed at most every 60 s, bounded in time); the scripts also wrap that call
 * in `timeout 3` when the shell has one, so a completion can never hang the prompt.
 *
 * Each script finds the command path the same way: the words before the cursor that are not options (nor
 * an option's value) and name a sub-command of the path so far; the first other word is an argument.
 */
import type { Command } from 'commander';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** Command paths whose first argument is a machine name. */
export const HOST_COMMANDS = ['ssh', 'exec', 'proxy', 'known-hosts forget'];

export interface CommandNode {
  /** Space-separated command path ('' for `mssh` itself). */
  path: string;
  subcommands: string[];
  options: string[];
}

/** The visible commands of the program, depth first, with their sub-commands and option names. */
export function commandTree(program: Command): CommandNode[] {
  const help = program.createHelp();
  const nodes: CommandNode[] = [];
  const walk = (cmd: Command, path: string) => {
    const subs = help.visibleCommands(cmd).filter((c) => !c.name().startsWith('_'));
    const options = help
      .visibleOptions(cmd)
      .flatMap((o) => [o.short, o.long])
      .filter((f): f is string => !!f);
    nodes.push({ path, subcommands: subs.map((c) => c.name()), options });
    for (const c of subs) if (c.name() !== 'help') walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, '');
  return nodes;
}

/** Options that take a value (the next word is theirs, not an argument). */
export function valueOptions(program: Command): string[] {
  const found = new Set<string>();
  const walk = (cmd: Command) => {
    for (const o of cmd.options) {
      if (o.required || o.optional) for (const f of [o.short, o.long]) if (f) found.add(f);
    }
    for (const c of cmd.commands) walk(c);
  };
  walk(program);
  return [...found].sort();
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `case` functions shared by bash and zsh (the syntax is the same in both). */
function caseFunctions(nodes: CommandNode[], valueOpts: string[]): string {
  const subs = nodes
    .filter((n) => n.subcommands.length > 0)
    .map((n) => `    ${q(n.path)}) echo ${q(n.subcommands.join(' '))} ;;`);
  const opts = nodes.map((n) => `    ${q(n.path)}) echo ${q(n.options.join(' '))} ;;`);
  return [
    '_mssh_subcommands() {',
    '  case "$1" in',
    ...subs,
    '  esac',
    '}',
    '_mssh_options() {',
    '  case "$1" in',
    ...opts,
    '  esac',
    '}',
    '_mssh_takes_value() {',
    `  case "$1" in ${valueOpts.map(q).join('|') || "''"}) return 0 ;; esac`,
    '  return 1',
    '}',
    '_mssh_host_command() {',
    `  case "$1" in ${HOST_COMMANDS.map(q).join('|')}) return 0 ;; esac`,
    '  return 1',
    '}',
    '_mssh_hosts() {',
    '  if command -v timeout >/dev/null 2>&1; then timeout 3 mssh __complete hosts 2>/dev/null',
    '  else mssh __complete hosts 2>/dev/null; fi',
    '}',
  ].join('\n');
}

function bash(nodes: CommandNode[], valueOpts: string[]): string {
  return `# mssh completion for bash. Load it with:  source <(mssh completion bash)
# or install it:  mssh completion bash | sudo tee /etc/bash_completion.d/mssh
${caseFunctions(nodes, valueOpts)}
_mssh() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" nargs=0 skip=0 w i subs
  COMPREPLY=()
${walkWords('COMP_WORDS', 1, 'COMP_CWORD')}  [[ $skip -eq 1 ]] && return 0
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_mssh_options "$cmdpath")" -- "$cur"))
    return 0
  fi
  if [[ $nargs -eq 0 ]]; then
    subs="$(_mssh_subcommands "$cmdpath")"
    if [[ -n "$subs" ]]; then
      COMPREPLY=($(compgen -W "$subs" -- "$cur"))
      return 0
    fi
    if _mssh_host_command "$cmdpath"; then
      local prefix=""
      if [[ "$cur" == *@* ]]; then prefix="\${cur%%@*}@"; fi
      COMPREPLY=($(compgen -P "$prefix" -W "$(_mssh_hosts)" -- "\${cur#"$prefix"}"))
    fi
  fi
  return 0
}
complete -o default -F _mssh mssh
`;
}

/**
 * The word walk bash and zsh share: skip option values and everything after `--`, follow sub-commands
 * into cmdpath, count the other words (nargs). Bounded to 64 words.
 */
function walkWords(words: string, first: number, current: string): string {
  return `  for ((i = ${first}; i < ${current} && i < 64; i++)); do
    w="\${${words}[i]}"
    if [[ $skip -eq 1 ]]; then skip=0; continue; fi
    if [[ "$w" == "--" ]]; then return 0; fi
    if [[ "$w" == -* ]]; then
      if [[ "$w" != *=* ]] && _mssh_takes_value "$w"; then skip=1; fi
      continue
    fi
    subs=" $(_mssh_subcommands "$cmdpath") "
    if [[ $nargs -eq 0 && "$subs" == *" $w "* ]]; then cmdpath="\${cmdpath:+$cmdpath }$w"; else nargs=$((nargs + 1)); fi
  done
`;
}

function zsh(nodes: CommandNode[], valueOpts: string[]): string {
  return `#compdef mssh
# mssh completion for zsh. Load it with:  source <(mssh completion zsh)
# or save it as _mssh in a directory of $fpath.
${caseFunctions(nodes, valueOpts)}
_mssh() {
  local cur="\${words[CURRENT]}" cmdpath="" nargs=0 skip=0 w i subs
${walkWords('words', 2, 'CURRENT')}  [[ $skip -eq 1 ]] && { _files; return; }
  if [[ "$cur" == -* ]]; then
    compadd -- \${=$(_mssh_options "$cmdpath")}
    return
  fi
  if [[ $nargs -eq 0 ]]; then
    subs="$(_mssh_subcommands "$cmdpath")"
    if [[ -n "$subs" ]]; then
      compadd -- \${=subs}
      return
    fi
    if _mssh_host_command "$cmdpath"; then
      local -a hosts
      hosts=(\${(f)"$(_mssh_hosts)"})
      if [[ "$cur" == *@* ]]; then compadd -P "\${cur%%@*}@" -- $hosts; else compadd -- $hosts; fi
      return
    fi
  fi
  _files
}
if [[ "$funcstack[1]" == "_mssh" ]]; then _mssh "$@"; else compdef _mssh mssh; fi
`;
}

function fish(nodes: CommandNode[], valueOpts: string[]): string {
  // Command paths are words of a-z and - joined by spaces: safe inside double quotes.
  const lines = [
    '# mssh completion for fish. Load it with:  mssh completion fish | source',
    '# or install it:  mssh completion fish > ~/.config/fish/completions/mssh.fish',
    'function __mssh_path',
    '    set -l words (commandline -opc)',
    '    set -l cmdpath',
    '    set -l nargs 0',
    '    set -l skip 0',
    `    set -l value_opts ${valueOpts.map(q).join(' ')}`,
    '    for w in $words[2..-1]',
    '        if test $skip -eq 1; set skip 0; continue; end',
    "        if test \"$w\" = '--'; echo '--'; return; end",
    "        if string match -q -- '-*' $w",
    "            if not string match -q -- '*=*' $w; and contains -- $w $value_opts; set skip 1; end",
    '            continue',
    '        end',
    '        set -l joined (string join " " $cmdpath)',
    '        if test $nargs -eq 0; and contains -- $w (__mssh_subcommands "$joined")',
    '            set cmdpath $cmdpath $w',
    '        else',
    '            set nargs (math $nargs + 1)',
    '        end',
    '    end',
    '    if test $skip -eq 1; echo "--"; return; end',
    '    set -l joined (string join " " $cmdpath)',
    '    echo "$joined|$nargs"',
    'end',
    '# at PATH: the cursor is at the first argument of PATH; in PATH: anywhere after PATH',
    'function __mssh_at',
    '    test (__mssh_path) = "$argv[1]|0"',
    'end',
    'function __mssh_in',
    '    string match -q -- "$argv[1]|*" (__mssh_path)',
    'end',
    'function __mssh_subcommands',
    '    switch "$argv[1]"',
    ...nodes
      .filter((n) => n.subcommands.length > 0)
      .flatMap((n) => [`        case ${q(n.path)}`, `            printf '%s\\n' ${n.subcommands.map(q).join(' ')}`]),
    '    end',
    'end',
    'function __mssh_hosts',
    '    set -l prefix (string match -r -- "^[^@]*@" (commandline -ct))',
    '    set -l names',
    '    if command -q timeout',
    '        set names (timeout 3 mssh __complete hosts 2>/dev/null)',
    '    else',
    '        set names (mssh __complete hosts 2>/dev/null)',
    '    end',
    '    for n in $names',
    '        echo "$prefix$n"',
    '    end',
    'end',
    'complete -c mssh -f',
  ];
  for (const n of nodes) {
    if (n.subcommands.length > 0)
      lines.push(`complete -c mssh -n '__mssh_at "${n.path}"' -a '(__mssh_subcommands "${n.path}")'`);
    for (const o of n.options.filter((x) => x.startsWith('--')))
      lines.push(`complete -c mssh -n '__mssh_in "${n.path}"' -l ${o.slice(2)}`);
  }
  for (const h of HOST_COMMANDS) lines.push(`complete -c mssh -n '__mssh_at "${h}"' -a '(__mssh_hosts)'`);
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: Shell, program: Command): string {
  const nodes = commandTree(program);
  const valueOpts = valueOptions(program);
  return shell === 'bash' ? bash(nodes, valueOpts) : shell === 'zsh' ? zsh(nodes, valueOpts) : fish(nodes, valueOpts);
}
