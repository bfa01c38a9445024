/**
 * Which command lines the lean entry (lean-main.ts) runs itself: exactly the shapes `mssh config ssh`
 * writes for OpenSSH. Anything else (options, --help, a typo) goes to the full program, which parses it
 * with commander and says what is wrong.
 */
export type LeanCommand =
  | { kind: 'proxy'; host: string; loginId?: string }
  | { kind: 'known-hosts'; host: string; keyType?: string; key?: string };

/** The command lines handled here; null for anything else (the full program takes those). */
export function leanCommand(argv: string[]): LeanCommand | null {
  if (argv.some((a) => a === '--help' || a === '-h' || a === '--')) return null;
  if (argv[0] === 'proxy') {
    if (argv.length === 2 && !argv[1]!.startsWith('-')) return { kind: 'proxy', host: argv[1]! };
    if (argv.length === 4 && argv[1] === '--login-id' && !argv[3]!.startsWith('-'))
      return { kind: 'proxy', host: argv[3]!, loginId: argv[2]! };
    return null;
  }
  if (argv[0] === 'known-hosts' && argv[1] === 'openssh' && (argv.length === 3 || argv.length === 5)) {
    if (argv.slice(2).some((a) => a.startsWith('-'))) return null;
    return { kind: 'known-hosts', host: argv[2]!, keyType: argv[3], key: argv[4] };
  }
  return null;
}
