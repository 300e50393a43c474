#!/usr/bin/env bash
# Builds the pinned tools the chart checks need, once per user and pin.
#
#   charts/tools/build.sh [TOOL...]     (no TOOL: all of them)
#
# Every tool is compiled from source through the Go module proxy; nothing is
# downloaded as a prebuilt binary. Each tool lives in its own module under
# charts/tools/<tool>/ because their dependency graphs disagree (kubernetes,
# kwok, helm and tilt each pin a different k8s.io/* line).
#
# Where the binaries live:
#   $TOLLGATE_TOOLS_CACHE/<tool>@<pin>/bin/    the build, shared by every clone
#                                             of this user on this machine
#   $TOOLS_DIR/bin/<binary>                   a symlink per binary into the
#                                             entry this clone's pins select
# TOLLGATE_TOOLS_CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/tollgate/tools;
# TOOLS_DIR to <repo>/.cache/tools (gitignored). <pin> is a hash of the tool
# module's go.mod and go.sum, the packages, the link flags, the Go version
# and cgo: a change to any of them selects a new entry, and entries of other
# pins stay for the clones that still use them. Delete old ones by hand
# (`ls -lt`); nothing in Tollgate removes them.
#
# Concurrency: one flock per entry, so two clones building the same pin at
# once build it once; the build goes into a temporary directory beside the
# entry and is renamed into place, so an entry that exists is complete.
#
# Reporting: each tool prints whether it was warm (in the cache), imported or
# cold (built, with how long it took). When TOLLGATE_TOOLS_REPORT names a
# file, one line per tool is appended to it ("<tool> cold 12m03s"); .ci/run
# prints that file at the end.
#
# Migration: a clone that built its tools before the shared cache existed
# keeps them in $TOOLS_DIR/bin with a stamp per tool in $TOOLS_DIR/stamps.
# When a stamp equals the pin, its binaries are copied into the shared cache
# instead of being rebuilt; TOLLGATE_TOOLS_SEED=<other clone>/.cache/tools
# does the same from another clone. The pin is the same hash the stamps
# hold, so only a build of the very same pins is taken.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$repo/.cache/tools}"
cache="${TOLLGATE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/tools}"
bin="$TOOLS_DIR/bin"
mkdir -p "$bin" "$cache"

kube_version=v1.35.4
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=35 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=35"

# tool -> "packages|ldflags|estimate of a cold build on 2 cores"
declare -A spec=(
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy|$kube_ldflags|25-50 min"
  [etcd]="./cmd/etcd|-s -w|~5 min"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0|~10 min"
  [helm]="helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=35|5-15 min"
  [helm-unittest]="github.com/helm-unittest/helm-unittest/cmd/helm-unittest|-s -w|~3 min"
  [ko]="github.com/google/ko github.com/google/go-containerregistry/cmd/crane|-s -w|~3 min"
  [tilt]="github.com/tilt-dev/tilt/cmd/tilt|-s -w -X main.version=0.34.0|~15 min"
  [coredns]="./cmd/coredns|-s -w -X github.com/coredns/coredns/coremain.GitCommit=v1.14.7|~5 min"
  [traefik]="github.com/traefik/traefik/v3/cmd/traefik|-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=v3.6.12|~15 min"
)
# The default set; coredns and traefik are built on request (make cluster-tools).
order=(kube etcd kwok helm helm-unittest ko tilt)

tmpdirs=()
cleanup() { local d; for d in "${tmpdirs[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

report() { # tool state [duration]
  [[ -z "${TOLLGATE_TOOLS_REPORT:-}" ]] || echo "$*" >>"$TOLLGATE_TOOLS_REPORT"
}

# link points $bin/<binary> at the entry's binaries (replacing a stale link
# or a binary built by an older build.sh), each through a rename.
link() {
  local entry="$1" f name
  for f in "$entry"/bin/*; do
    name="$(basename "$f")"
    ln -sfn "$f" "$bin/.$name.tmp.$$"
    mv -Tf "$bin/.$name.tmp.$$" "$bin/$name"
  done
}

# importable prints a directory holding a build of $tool with pin $sum, from
# this clone's pre-cache layout or TOLLGATE_TOOLS_SEED.
importable() {
  local tool="$1" sum="$2" names="$3" d n
  for d in "$TOOLS_DIR" ${TOLLGATE_TOOLS_SEED:+"$TOLLGATE_TOOLS_SEED"}; do
    [[ -f "$d/stamps/$tool" && "$(cat "$d/stamps/$tool")" == "$sum" ]] || continue
    for n in $names; do
      # A symlink is this script's own link, not an old build.
      [[ -f "$d/bin/$n" && ! -L "$d/bin/$n" ]] || continue 2
    done
    echo "$d/bin"
    return 0
  done
  return 1
}

# tilt_source prepares a build of tilt with a web page, and prints the
# -modfile flag that selects it. Tilt embeds its web UI from
# pkg/assets/build, which its releases fill with a Node build; the module on
# the proxy holds none there, and a release build (main.version set) without
# it refuses to start every command that serves its API, `tilt ci` and
# `tilt up` included ("running in prod mode, but JS/CSS files are not
# available"). The go command does not lay files over the module cache
# (-overlay refuses it), so the module is copied beside the build, given
# webui/index.html (a page saying why there is no UI) and selected by a
# replace line in a copy of the tool's go.mod; go.sum is unchanged.
tilt_source() {
  local tmp="$1" src
  # go mod download, not go list -m: on a cold module cache go list prints
  # an empty Dir (it does not fetch the module's files), and the copy fails.
  src="$(cd "$here/tilt" && GOWORK=off GOFLAGS=-mod=readonly go mod download -json github.com/tilt-dev/tilt |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  if [[ -z "$src" || ! -d "$src" ]]; then
    echo "tools: could not download github.com/tilt-dev/tilt's module source (go mod download)" >&2
    return 1
  fi
  mkdir -p "$tmp/src" "$tmp/mod"
  cp -R "$src" "$tmp/src/tilt"
  chmod -R u+w "$tmp/src/tilt"
  cp "$here/tilt/webui/index.html" "$tmp/src/tilt/pkg/assets/build/index.html"
  cp "$here/tilt/go.mod" "$here/tilt/go.sum" "$tmp/mod/"
  printf '\nreplace github.com/tilt-dev/tilt => %s\n' "$tmp/src/tilt" >>"$tmp/mod/go.mod"
  echo "-modfile=$tmp/mod/go.mod"
}

build_one() {
  local tool="$1" dir="$here/$1"
  local entry="${spec[$tool]:-}"
  if [[ -z "$entry" || ! -f "$dir/go.mod" ]]; then
    echo "tools: unknown tool '$tool' (known: ${!spec[*]})" >&2
    return 2
  fi
  local pkgs ldflags estimate
  IFS='|' read -r pkgs ldflags estimate <<<"$entry"
  # Static binaries, except tilt: its Tiltfile parser (tree-sitter) needs cgo.
  local cgo=0
  [[ "$tool" != tilt ]] || cgo=1
  # Files added to the tool's module source are part of the pin (tilt's
  # web page, see tilt_source).
  local overlay_files=""
  [[ "$tool" != tilt ]] || overlay_files="$dir/webui/index.html"
  local sum
  sum="$(cat "$dir/go.mod" "$dir/go.sum" $overlay_files <(echo "$pkgs|$ldflags|$(go env GOVERSION)|cgo=$cgo") | sha256sum | cut -c1-16)"
  local final="$cache/$tool@$sum"
  local names="" p
  for p in $pkgs; do names+=" ${p##*/}"; done

  if [[ -d "$final" ]]; then
    link "$final"
    echo "tools: $tool warm ($final)"
    report "$tool warm"
    return 0
  fi

  # One builder per entry; whoever waited finds the entry complete.
  exec {lock}>"$final.lock"
  if ! flock -n "$lock"; then
    echo "tools: another build of $tool holds $final.lock; waiting for it"
    flock "$lock"
  fi
  if [[ -d "$final" ]]; then
    exec {lock}>&-
    link "$final"
    echo "tools: $tool warm (built by a concurrent run)"
    report "$tool warm"
    return 0
  fi

  local tmp
  tmp="$(mktemp -d "$cache/.$tool@$sum.tmp.XXXXXX")"
  tmpdirs+=("$tmp")
  chmod 755 "$tmp"
  mkdir -p "$tmp/bin"
  printf 'tool: %s\npackages: %s\nldflags: %s\ngo: %s\ncgo: %s\nmodule: charts/tools/%s (go.mod + go.sum)\n' \
    "$tool" "$pkgs" "$ldflags" "$(go env GOVERSION)" "$cgo" "$tool" >"$tmp/pin"

  local start=$SECONDS state from
  if from="$(importable "$tool" "$sum" "$names")"; then
    for p in $names; do cp "$from/$p" "$tmp/bin/$p"; done
    state=imported
    echo "tools: $tool imported from $from (same pin $sum)"
  else
    echo "tools: building $tool into $final (cold: $estimate on 2 cores; every clone of this user reuses it)"
    (
      cd "$dir"
      modfile=()
      if [[ "$tool" == tilt ]]; then modfile=("$(tilt_source "$tmp")") || exit 1; fi
      # GOWORK=off: these modules are not part of the repository's go.work.
      # GOFLAGS is replaced, not extended: the environment's flags are not ours.
      env GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=$cgo \
        go build -buildvcs=false -trimpath "${modfile[@]}" -ldflags "$ldflags" -o "$tmp/bin/" $pkgs
    )
    rm -rf "$tmp/src" "$tmp/mod"
    state=cold
  fi
  mv -T "$tmp" "$final"
  exec {lock}>&-
  link "$final"
  local took=$((SECONDS - start))
  printf 'tools: %s %s in %dm%02ds\n' "$tool" "$state" $((took / 60)) $((took % 60))
  report "$tool $state $(printf '%dm%02ds' $((took / 60)) $((took % 60)))"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=("${order[@]}")
for t in "${tools[@]}"; do
  build_one "$t"
done
