/**
 * Which command lines the lean entry (lean-main.ts) runs itself: exactly the shapes `mssh config ssh`
 * writes for OpenSSH. Anything else (options, --help, a typo) goes to the full program, which parses it
 * with commander and says what is wrong.
 */
export type LeanCommand =
  | { kind: 'proxy'; host: string; loginId?: string; knownHostsDir?: string }
  | { kind: 'known-hosts'; host: string; keyType?: string; key?: string };

/** The command lines handled here; null for anything else (the full program takes those). */
export function leanCommand(argv: string[]): LeanCommand | null {
  if (argv.some((a) => a === '--help' || a === '-h' || a === '--')) return null;
  if (argv[0] === 'proxy') {
    // proxy [--login-id ID] [--known-hosts-dir DIR] HOST, in this order
    const rest = argv.slice(1);
    const cmd: LeanCommand = { kind: 'proxy', host: '' };
    if (rest[0] === '--login-id' && rest.length >= 2) cmd.loginId = rest.splice(0, 2)[1]!;
    if (rest[0] === '--known-hosts-dir' && rest.length >= 2) cmd.knownHostsDir = rest.splice(0, 2)[1]!;
    if (rest.length !== 1 || rest[0]!.startsWith('-')) return null;
    cmd.host = rest[0]!;
    return cmd;
  }
  if (argv[0] === 'known-hosts' && argv[1] === 'openssh' && (argv.length === 3 || argv.length === 5)) {
    if (argv.slice(2).some((a) => a.startsWith('-'))) return null;
    return { kind: 'known-hosts', host: argv[2]!, keyType: argv[3], key: argv[4] };
  }
  return null;
}
