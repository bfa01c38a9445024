/**
 * GET /install/agent.sh: the POSIX sh script behind the one-line agent install (issue 20), with this
 * relay's URL, public key pin, certificate fingerprint and the tarball's SHA-256 written into it.
 *
 *   curl --pinnedpubkey PIN -k RELAY/install/agent.sh | sudo sh -s -- --token T --name N
 *     -> curl --pinnedpubkey PIN -k RELAY/install/mssh-agent-linux-x64.tar.gz, sha256sum must match
 *     -> unpack to PREFIX/.new, swap it in as PREFIX/current (PREFIX/bin/mssh-agent links to it)
 *     -> mssh-agent enroll (only when STATE/agent.json is missing: an upgrade keeps the identity)
 *     -> systemd is PID 1: mssh-agent install-service (the bundled node and main.js) and restart;
 *        else: print how to run it, or with --start-background start it with nohup (PREFIX/agent.log, .pid)
 *
 * Its failures print `mssh-agent install: INSTALL_ERR_...: what happened` and a hint, and exit with the
 * code's own status (apps/relay/README.md, "Install the agent with one line"). The script is tested by
 * e2e/agent-install.e2e.test.ts, which runs it, and install-script.test.ts (sh -n, the embedded values).
 */
import { shQuote } from '@mssh/cli-kit';

export interface InstallScriptValues {
  relayUrl: string;
  /** sha256//BASE64 of the relay certificate's public key (curl --pinnedpubkey). */
  publicKeyPin: string;
  /** SHA256:... of the relay certificate (mssh-agent enroll --relay-fingerprint). */
  fingerprint: string;
  tarballPath: string;
  tarballSha256: string;
  version: string;
}

/** The exit status of each failure of the script (documented in apps/relay/README.md). */
export const INSTALL_EXIT = {
  INSTALL_ERR_USAGE: 64,
  INSTALL_ERR_PLATFORM: 65,
  INSTALL_ERR_NOT_INSTALLED: 66,
  INSTALL_ERR_TOOL: 69,
  INSTALL_ERR_DOWNLOAD: 70,
  INSTALL_ERR_CHECKSUM: 71,
  INSTALL_ERR_RUNTIME: 72,
  INSTALL_ERR_WRITE: 73,
  INSTALL_ERR_ENROLL: 74,
  INSTALL_ERR_SERVICE: 75,
  INSTALL_ERR_START: 76,
} as const;

export function renderInstallScript(v: InstallScriptValues): string {
  const e = INSTALL_EXIT;
  return `#!/bin/sh
# mssh agent installer, served by the mssh relay ${v.relayUrl} (mssh ${v.version}).
#   curl -fsS --pinnedpubkey '${v.publicKeyPin}' -k ${v.relayUrl}/install/agent.sh \\
#     | sudo sh -s -- --token TOKEN --name NAME
# The pin is the relay's public key: curl checks it even with -k (-k only skips the chain, the relay's
# certificate is self-signed). The tarball is checked against the SHA-256 below before anything is installed.
# Options:
#   --token T --name N     enrol with this one-time token (the first install only; mssh-relay agent enroll N)
#   --prefix DIR           install here (default /opt/mssh-agent)
#   --state-dir DIR        the agent's identity and state (default /var/lib/mssh-agent); kept on upgrade
#   --target T             where sessions go: auto, embedded or HOST:PORT (default: auto)
#   --no-start             install (and enrol) only
#   --start-background     start with nohup (log PREFIX/agent.log, pid PREFIX/agent.pid), even with systemd
#   --uninstall [--purge]  stop and remove the agent (and with --purge its state: the identity)
# Running it again upgrades in place and keeps the identity.
set -eu

RELAY_URL=${shQuote(v.relayUrl)}
RELAY_PIN=${shQuote(v.publicKeyPin)}
RELAY_FINGERPRINT=${shQuote(v.fingerprint)}
TARBALL_URL="$RELAY_URL"${shQuote(v.tarballPath)}
TARBALL_SHA256=${shQuote(v.tarballSha256)}
VERSION=${shQuote(v.version)}
SERVICE=mssh-agent

say() { printf 'mssh-agent install: %s\\n' "$*"; }
die() {
  printf 'mssh-agent install: %s: %s\\n' "$1" "$3" >&2
  [ -z "\${4:-}" ] || printf '  %s\\n' "$4" >&2
  exit "$2"
}
need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] || die INSTALL_ERR_USAGE ${e.INSTALL_ERR_USAGE} "$1 needs a value" "Run it with --help for the options."
}
absolute() {
  case $2 in
    /?*) ;;
    *) die INSTALL_ERR_USAGE ${e.INSTALL_ERR_USAGE} "$1 must be an absolute path, not '$2'" ;;
  esac
}
usage() {
  cat <<'USAGE'
Installs, upgrades or removes the mssh agent (self-contained: no Node.js needed on this machine).
  ... | sudo sh -s -- --token TOKEN --name NAME [--prefix DIR] [--state-dir DIR] [--target T]
                      [--no-start | --start-background]
  ... | sudo sh -s -- [--prefix DIR]                   upgrade in place (keeps the identity)
  ... | sudo sh -s -- --uninstall [--purge] [--prefix DIR]
USAGE
}

prefix=/opt/mssh-agent
state=/var/lib/mssh-agent
state_given=
token=
name=
target=
start=auto
uninstall=
purge=
while [ $# -gt 0 ]; do
  case $1 in
    --token) need_value "$@"; token=$2; shift 2 ;;
    --name) need_value "$@"; name=$2; shift 2 ;;
    --prefix) need_value "$@"; prefix=\${2%/}; shift 2 ;;
    --state-dir) need_value "$@"; state=\${2%/}; state_given=1; shift 2 ;;
    --target) need_value "$@"; target=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    --start-background) start=background; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die INSTALL_ERR_USAGE ${e.INSTALL_ERR_USAGE} "unknown option $1" "Options: --token T --name N --prefix DIR --state-dir DIR --target T --no-start --start-background --uninstall [--purge]" ;;
  esac
done
absolute --prefix "$prefix"
absolute --state-dir "$state"
marker="$prefix/.mssh-agent-install"
pidfile="$prefix/agent.pid"

is_systemd() { [ "$(cat /proc/1/comm 2>/dev/null || true)" = systemd ]; }

# The background agent of this prefix (pid file, and its command line names the prefix), stopped. A process
# that has exited has no command line (also as a zombie nobody reaped): that is what the loop waits for.
ours() { grep -qF -- "$prefix/" "/proc/$1/cmdline" 2>/dev/null; }
stop_background() {
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  rm -f "$pidfile"
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  ours "$pid" || return 1
  kill "$pid" 2>/dev/null || true
  i=0
  while ours "$pid"; do
    i=$((i + 1))
    if [ $i -gt 150 ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
    sleep 0.2
  done
  say "stopped the agent (pid $pid)"
  return 0
}

recorded() { # KEY: the value the install recorded in the marker
  [ -f "$marker" ] || return 0
  while IFS='=' read -r k val; do
    if [ "$k" = "$1" ]; then printf '%s' "$val"; return 0; fi
  done <"$marker"
}

if [ -n "$uninstall" ]; then
  [ -f "$marker" ] || die INSTALL_ERR_NOT_INSTALLED ${e.INSTALL_ERR_NOT_INSTALLED} "no mssh agent installed by this script in $prefix" "Give the --prefix used at install time."
  prefix=$(cd "$prefix" && pwd -P)
  marker="$prefix/.mssh-agent-install"
  pidfile="$prefix/agent.pid"
  [ -n "$state_given" ] || state=$(recorded state)
  mode=$(recorded mode)
  if [ "$mode" = systemd ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$SERVICE" >/dev/null 2>&1 || true
    rm -f "/etc/systemd/system/$SERVICE.service"
    systemctl daemon-reload >/dev/null 2>&1 || true
    say "stopped and removed the systemd unit $SERVICE"
  fi
  stop_background || true
  if [ -L /usr/local/bin/mssh-agent ] && [ "$(readlink /usr/local/bin/mssh-agent)" = "$prefix/bin/mssh-agent" ]; then
    rm -f /usr/local/bin/mssh-agent
  fi
  rm -rf "$prefix"
  say "removed $prefix"
  if [ -n "$purge" ] && [ -n "$state" ] && [ -d "$state" ]; then
    if [ -f "$state/agent.json" ] || [ -z "$(ls -A "$state")" ]; then
      rm -rf "$state"
      say "removed the agent's state $state (its identity: revoke it on the relay too, mssh-relay agent revoke NAME)"
    else
      say "left $state: it holds no agent.json, so it is not an agent's state directory"
    fi
  elif [ -n "$state" ] && [ -f "$state/agent.json" ]; then
    say "kept the agent's identity in $state (--uninstall --purge removes it)"
  fi
  exit 0
fi

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] || die INSTALL_ERR_PLATFORM ${e.INSTALL_ERR_PLATFORM} "this relay serves the agent for Linux x86_64; this machine is $(uname -s) $(uname -m)" "Install the agent by hand (see apps/agent/README.md of mssh)."
for tool in curl tar gzip sha256sum mktemp; do
  command -v "$tool" >/dev/null 2>&1 || die INSTALL_ERR_TOOL ${e.INSTALL_ERR_TOOL} "$tool is missing" "Install it (apt-get install -y curl tar gzip coreutils), then run this again."
done
enrolled=
[ -f "$state/agent.json" ] && enrolled=1
if [ -z "$enrolled" ] && { [ -z "$token" ] || [ -z "$name" ]; }; then
  die INSTALL_ERR_USAGE ${e.INSTALL_ERR_USAGE} "this machine is not enrolled yet ($state/agent.json is missing): give --token and --name" "Get a token on the relay: mssh-relay agent enroll NAME (or mssh admin agents enroll NAME)."
fi

made_prefix=
[ -d "$prefix" ] || made_prefix=1
mkdir -p "$prefix" 2>/dev/null || die INSTALL_ERR_WRITE ${e.INSTALL_ERR_WRITE} "cannot create $prefix" "Run it as root (| sudo sh -s -- ...), or give --prefix DIR you can write."
tmp=$(mktemp -d "$prefix/.download.XXXXXX") || die INSTALL_ERR_WRITE ${e.INSTALL_ERR_WRITE} "cannot write in $prefix" "Run it as root, or give --prefix DIR you can write."
# The agent's command line names the real path (the launcher resolves symlinks): so does this script.
prefix=$(cd "$prefix" && pwd -P)
marker="$prefix/.mssh-agent-install"
pidfile="$prefix/agent.pid"
trap 'rm -rf "$tmp" "$prefix/.new"; [ -z "$made_prefix" ] || [ -f "$marker" ] || rmdir "$prefix" 2>/dev/null || true' EXIT
say "downloading the agent (mssh $VERSION) from $TARBALL_URL"
curl -fsS --pinnedpubkey "$RELAY_PIN" -k -o "$tmp/agent.tar.gz" "$TARBALL_URL" || die INSTALL_ERR_DOWNLOAD ${e.INSTALL_ERR_DOWNLOAD} "downloading $TARBALL_URL failed (curl exit $?)" "See curl's message above; exit 90 means the relay's key is not the pinned one."
set -- $(sha256sum "$tmp/agent.tar.gz")
[ "$1" = "$TARBALL_SHA256" ] || die INSTALL_ERR_CHECKSUM ${e.INSTALL_ERR_CHECKSUM} "the download's SHA-256 is $1, not $TARBALL_SHA256 as the relay's script says: nothing was installed" "Run the one-line install again; if it fails again, something between this machine and the relay alters the download."
say "SHA-256 checked: $TARBALL_SHA256"
rm -rf "$prefix/.new"
mkdir "$prefix/.new"
tar -xzf "$tmp/agent.tar.gz" -C "$prefix/.new" --no-same-owner || die INSTALL_ERR_WRITE ${e.INSTALL_ERR_WRITE} "unpacking the agent into $prefix/.new failed" "Check the free space and permissions of $prefix."
out=$("$prefix/.new/mssh-agent/bin/mssh-agent" --version 2>&1) || die INSTALL_ERR_RUNTIME ${e.INSTALL_ERR_RUNTIME} "the bundled agent does not run on this machine: $out" "Nothing was changed in $prefix; install the agent by hand (apps/agent/README.md of mssh)."

was_running=
stop_background && was_running=1
[ -d "$prefix/current" ] && mv "$prefix/current" "$prefix/.old"
mv "$prefix/.new/mssh-agent" "$prefix/current"
rm -rf "$prefix/.old" "$prefix/.new"
mkdir -p "$prefix/bin"
ln -sf ../current/bin/mssh-agent "$prefix/bin/mssh-agent"
if [ "$prefix" = /opt/mssh-agent ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
  ln -sf "$prefix/bin/mssh-agent" /usr/local/bin/mssh-agent
fi
agent="$prefix/bin/mssh-agent"
say "installed mssh-agent $out in $prefix"

if [ -z "$enrolled" ]; then
  set -- enroll --relay "$RELAY_URL" --token "$token" --name "$name" --relay-fingerprint "$RELAY_FINGERPRINT" --state-dir "$state"
  [ -z "$target" ] || set -- "$@" --target "$target"
  "$agent" "$@" || die INSTALL_ERR_ENROLL ${e.INSTALL_ERR_ENROLL} "enrolment failed (see above): the agent is installed in $prefix but not enrolled" "Get a new token on the relay (mssh-relay agent enroll NAME) and run the one-line install again."
else
  say "already enrolled ($state/agent.json): this machine keeps its identity"
fi

set -- --state-dir "$state"
[ -z "$target" ] || set -- "$@" --target "$target"
[ "$start" = auto ] && [ -n "$was_running" ] && start=background
if [ "$start" = no ]; then
  mode=none
  say "not started (--no-start). Start it with: $agent run $*"
elif [ "$start" = auto ] && is_systemd; then
  "$agent" install-service --force --create-user --node "$prefix/current/bin/node" --script "$prefix/current/dist/main.js" -- "$@" || die INSTALL_ERR_SERVICE ${e.INSTALL_ERR_SERVICE} "installing the systemd unit failed (see above)" "Fix it, then run the one-line install again (it keeps the identity)."
  systemctl restart "$SERVICE" || die INSTALL_ERR_SERVICE ${e.INSTALL_ERR_SERVICE} "systemctl restart $SERVICE failed" "See: systemctl status $SERVICE; journalctl -u $SERVICE"
  mode=systemd
  say "running as the systemd service $SERVICE (systemctl status $SERVICE; journalctl -u $SERVICE)"
elif [ "$start" = background ]; then
  nohup "$agent" run "$@" >>"$prefix/agent.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  sleep 1
  if ! ours "$(cat "$pidfile")"; then
    rm -f "$pidfile"
    die INSTALL_ERR_START ${e.INSTALL_ERR_START} "the agent exited at once; the end of $prefix/agent.log: $(tail -n 5 "$prefix/agent.log" 2>/dev/null || true)" "Fix what the log says, then run: $agent run $*"
  fi
  mode=background
  say "started in the background: pid $(cat "$pidfile"), log $prefix/agent.log"
else
  mode=foreground
  say "systemd does not run this machine (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): start the agent yourself, in the foreground:"
  say "  $agent run $*"
  say "or in the background (nohup, log $prefix/agent.log): run this install again with --start-background"
fi
printf 'state=%s\\nmode=%s\\nversion=%s\\n' "$state" "$mode" "$VERSION" >"$marker"
say "done. Upgrade: run the same line again (no token needed); remove: ... | sudo sh -s -- --uninstall"
`;
}
